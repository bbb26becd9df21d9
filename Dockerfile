# syntax=docker/dockerfile:1
# CPU image: every part of streamscribe; the command picks the part
# (ingest | segmenter | transcriber | translator). Build: docker build -t streamscribe .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY shared ./shared
COPY ingest ./ingest
COPY segmenter ./segmenter
COPY transcriber ./transcriber
COPY translator ./translator
COPY streamscribe ./streamscribe
RUN pip install -c constraints.txt . && pip check
# MODEL: tiny.en ships inside the package (works offline); any other name (e.g. large-v3)
# is downloaded into the image here, or left out with MODEL=none and cached on the /models
# volume on first start.
ARG MODEL=tiny.en
ENV HF_HUB_CACHE=/models
RUN mkdir -p /models && streamscribe fetch-model "${MODEL}"

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --uid 10001 --home-dir /home/streamscribe --create-home streamscribe
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=10001:10001 /models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_CACHE=/models \
    STREAMSCRIBE_HOST=0.0.0.0 \
    STREAMSCRIBE_METRICS_HOST=0.0.0.0 \
    STREAMSCRIBE_METRICS_PORT=9100
USER 10001
VOLUME ["/models"]
EXPOSE 8080 8081 9100
ENTRYPOINT ["streamscribe"]
CMD ["ingest"]
