# Build the release binary, then ship it on a slim base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/strategist

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged uid (10001, outside any distribution's range) that owns
# /app, so volumes can be prepared for it and nothing runs as root.
RUN groupadd --system --gid 10001 strategist \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin strategist \
    && mkdir -p /app/data \
    && chown -R 10001:10001 /app
COPY --from=build /src/target/release/strategist /usr/local/bin/strategist
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# No curl in the image: the binary asks its own /readyz (STRATEGIST_HEALTHCHECK_URL,
# default http://127.0.0.1:8080/readyz). A worker-only process (`serve --no-http`)
# has no HTTP: its service turns the check off (see docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["strategist", "healthcheck"]
ENTRYPOINT ["strategist"]
CMD ["serve"]
