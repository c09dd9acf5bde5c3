# syntax=docker/dockerfile:1
# Multi-stage build: compile with the full Rust toolchain, ship a small Debian runtime with only
# the binary, running as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked && cp target/release/valuva /valuva

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/valuva --create-home valuva \
    && install -d -o valuva -g valuva /var/lib/valuva/uploads
COPY --from=build /valuva /usr/local/bin/valuva
USER valuva
WORKDIR /var/lib/valuva
ENV HOST=0.0.0.0 PORT=8080 LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 CMD ["valuva", "healthcheck"]
ENTRYPOINT ["valuva"]
CMD ["serve"]
