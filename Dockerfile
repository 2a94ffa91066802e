# syntax=docker/dockerfile:1
# doproxy as a container: build with the dev dependencies, run with production ones only.

# --- build: TypeScript to dist/ (tsc is a dev dependency) ---
FROM node:20-bookworm-slim AS build
# better-sqlite3 compiles from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json && chmod +x dist/cli/main.js

# --- deps: production node_modules only (the `prepare` script would need tsc, so it is skipped) ---
FROM node:20-bookworm-slim AS deps
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm rebuild better-sqlite3

# --- runtime ---
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/doproxy
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json doproxy.toml ./
COPY migrations ./migrations
COPY assets ./assets
COPY spec ./spec
# A dedicated user; the inventory lives in /var/lib/doproxy (mount a volume there).
RUN groupadd --system doproxy && useradd --system --gid doproxy --home-dir /var/lib/doproxy doproxy \
    && mkdir -p /var/lib/doproxy /etc/doproxy \
    && sed 's|^path = "inventory/doproxy.db"|path = "/var/lib/doproxy/doproxy.db"|' doproxy.toml > /etc/doproxy/doproxy.toml \
    && chown doproxy:doproxy /var/lib/doproxy \
    && ln -s /opt/doproxy/dist/cli/main.js /usr/local/bin/doproxy
USER doproxy
VOLUME ["/var/lib/doproxy"]
EXPOSE 8080 9090
# No curl in slim images: node asks the admin listener itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/api/status',{headers:process.env.DOPROXY_ADMIN_TOKEN?{authorization:'Bearer '+process.env.DOPROXY_ADMIN_TOKEN}:{}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["doproxy"]
CMD ["serve", "--config", "/etc/doproxy/doproxy.toml"]
