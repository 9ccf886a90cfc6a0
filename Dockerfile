# dropstream: the streamer and the generator run from this one image (tsx runs the TypeScript sources).
FROM node:20-bookworm-slim

WORKDIR /app

# Node 20 bundles npm 10, which ignores package.json "allowScripts" and runs every install script;
# npm 11 (which wrote the lockfile) applies that policy. Pinned so that builds are repeatable.
RUN npm install --global npm@11.19.1 && npm cache clean --force

# Dependencies first: this layer is rebuilt only when the manifest or the lockfile change.
# Runtime dependencies only (tsx is one); install scripts run as "allowScripts" allows.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .

# Run as "node" (uid 1000), not root: the embedded PostgreSQL (used when DATABASE_URL is unset)
# refuses to run as root, and files written to a bind-mounted ./data belong to a normal user.
# /data is the default data directory and a writable mount point for a volume; with a bind mount,
# docker-compose.yml runs as the host user's uid instead (DROPSTREAM_UID/GID in .env).
RUN mkdir /data && chown node:node /data
ENV DROPSTREAM_DATA_DIR=/data
# npm writes its logs under its cache: somewhere writable whichever uid runs the container.
ENV npm_config_cache=/tmp/.npm npm_config_update_notifier=false
USER node

CMD ["npm", "run", "stream"]
