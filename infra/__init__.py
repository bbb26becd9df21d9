"""The AWS CDK app: each streamscribe part as its own ECS service, transcribers on GPUs."""
