# The service on the CPU: `docker compose up` builds this for the api and worker services.
# Build stage: install, compile TypeScript to dist/, then drop the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# This image's npm 10 ignores package.json's allowScripts, so onnxruntime-node's install script runs
# here; "skip" keeps it from downloading the CUDA provider (the CPU build ships in the package).
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# Runtime: node runs the compiled JavaScript directly (no npm, no tsx), so SIGTERM reaches the
# process's own handlers: the worker finishes or hands back its job, the API drains. compose adds
# an init process (init: true) that reaps zombies and forwards signals.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    VTC_IN_CONTAINER=1 \
    VTC_DATA_DIR=/data
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The model files (ONNX, manifests, tokenizer) are read from models/ at run time.
COPY --from=build /app/models ./models
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000 9464
CMD ["node", "dist/services/api/main.js"]
