# Build the release binary, then ship it on a slim base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/strategist

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/strategist /usr/local/bin/strategist
WORKDIR /app
EXPOSE 8080
ENTRYPOINT ["strategist"]
CMD ["serve"]
