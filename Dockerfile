# dropstream: the streamer and the generator run from this one image, as JavaScript compiled in a
# build stage: TypeScript and the other dev dependencies stay out of the image that runs.
FROM node:20-bookworm-slim AS base

WORKDIR /app

# Node 20 bundles npm 10, which ignores package.json "allowScripts" and runs every install script;
# npm 11 (which wrote the lockfile) applies that policy. Pinned so that builds are repeatable.
RUN npm install --global npm@11.19.1 && npm cache clean --force

# Dependencies first: their layers are rebuilt only when the manifest or the lockfile change.
# Install scripts run as "allowScripts" allows.
COPY package.json package-lock.json ./

FROM base AS build
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM base
# Runtime dependencies only, without the optional embedded PostgreSQL (≈ 60 MB of binaries): in a
# container DATABASE_URL names the database.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY sql sql
# The live page's HTML, CSS and module, served as they are (uPlot comes from node_modules).
COPY streamer/src/observe/page streamer/src/observe/page
COPY --from=build /app/dist dist
# dist/ is built and tsc is absent: `npm run status` (and the others, run by hand with
# `docker compose exec`) must skip their pre-script, the build. npm still runs the script asked for.
ENV npm_config_ignore_scripts=true

# Run as "node" (uid 1000), not root: files written to a bind-mounted ./data belong to a normal user.
# /data is the default data directory and a writable mount point for a volume; with a bind mount,
# docker-compose.yml runs as the host user's uid instead (DROPSTREAM_UID/GID in .env).
RUN mkdir /data && chown node:node /data
ENV DROPSTREAM_DATA_DIR=/data
# The HTTP server answers from outside the container only on every interface; compose publishes it
# on the host's loopback.
ENV DROPSTREAM_HTTP_HOST=0.0.0.0
EXPOSE 8181
# npm writes its logs under its cache: somewhere writable whichever uid runs the container.
ENV npm_config_cache=/tmp/.npm npm_config_update_notifier=false
USER node

# node itself, not `npm run stream`: npm's shell would neither pass SIGTERM on nor exec node, so a
# `docker stop` would kill the streamer instead of letting it finish its batch.
CMD ["node", "dist/streamer/src/main.js"]
