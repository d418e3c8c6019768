# Multi-stage build of the release site and the kraft binary.
# Needs a normal Rust image with the wasm32 target (it cannot be built on the development machines
# of this project, which have no container engine; see README).
FROM rust:1-bookworm AS build
RUN rustup target add wasm32-unknown-unknown
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY scripts scripts
# wasm-bindgen's CLI must match the crate version pinned in Cargo.toml.
RUN cargo install wasm-bindgen-cli --version "$(grep -oP '^wasm-bindgen = "=\K[0-9.]+' Cargo.toml)"
COPY . .
RUN scripts/site.sh release && cargo build --profile dist -p server

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 kraft \
 && useradd --system --uid 10001 --gid 10001 --home /data kraft \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /src/target/dist/kraft /usr/local/bin/kraft
COPY --from=build /src/target/site /app/site
ENV KRAFT_ADDR=0.0.0.0:3000 \
    KRAFT_SITE_ROOT=/app/site \
    KRAFT_DATA_DIR=/data \
    KRAFT_LOG_FORMAT=json
# Numeric, so a kubelet can tell the image runs as non-root (it cannot resolve a user name; the
# Helm chart's restricted pod security sets runAsNonRoot).
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["kraft"]
CMD ["serve"]
