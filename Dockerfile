# Build stage: the worker and its dependencies into a virtualenv; pip and its caches stay here.
FROM python:3.11-slim AS build
RUN python -m venv /venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN /venv/bin/pip install --no-cache-dir .

# Run stage: the virtualenv, the source tree (the schemas are read from it) and a user that is not root.
FROM python:3.11-slim
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin worker \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /venv /venv
WORKDIR /app
COPY worker ./worker
COPY schemas ./schemas
ENV PATH=/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
EXPOSE 6066
ENTRYPOINT ["python", "-m", "worker"]
CMD ["worker", "-l", "info"]
