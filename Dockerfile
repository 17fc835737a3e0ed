FROM node:20-bookworm-slim
ARG ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --onnxruntime-node-install=${ONNXRUNTIME_NODE_INSTALL}
COPY . .
ENV NODE_ENV=production
CMD ["npm", "start"]
