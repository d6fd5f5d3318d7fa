FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY schemas ./schemas
RUN pip install --no-cache-dir .
# The schemas are read from the source tree, so run from it.
ENV PYTHONPATH=/app
EXPOSE 6066
ENTRYPOINT ["python", "-m", "worker"]
CMD ["worker", "-l", "info"]
