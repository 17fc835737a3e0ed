FROM node:20-bookworm-slim
WORKDIR /app
# npm start never starts a Redis of its own in our containers: compose runs the Redis service.
ENV VTC_IN_CONTAINER=1
# skip: the CPU build that ships in the package; cuda12: also download the CUDA execution provider.
ARG ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
# This image's npm 10 ignores package.json's allowScripts, so onnxruntime-node's install script runs
# here and reads the variable.
RUN ONNXRUNTIME_NODE_INSTALL=${ONNXRUNTIME_NODE_INSTALL} npm ci
COPY . .
ENV NODE_ENV=production
CMD ["npm", "start"]
