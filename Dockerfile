# rowferry container image: build in the Rust image, run on distroless (glibc, non-root).
#
#   docker build -t rowferry .
#   docker run --rm -v $PWD/rowferry.toml:/etc/rowferry/config.toml:ro rowferry check --config /etc/rowferry/config.toml
#
# Not built in this repository's CI (no container runtime there); kept minimal on purpose.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rowferry \
 && mkdir -p /out/lib \
 && cp target/release/rowferry /out/ \
 # Shared libraries the binary needs beyond glibc/libgcc (zlib), for the distroless runtime.
 && ldd target/release/rowferry | awk '/libz\.so/ {print $3}' | xargs -r -I{} cp {} /out/lib/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/lib/ /usr/lib/
COPY --from=build /out/rowferry /usr/local/bin/rowferry
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/rowferry"]
CMD ["run", "--config", "/etc/rowferry/config.toml"]
