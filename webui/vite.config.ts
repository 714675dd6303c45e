/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API, the OpenAI-compatible routes and the
// WebSocket event stream to a running manager.
const target = process.env.LLM_MANAGER_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  base: "/",
  plugins: [react()],
  server: {
    proxy: {
      "/api/ws": { target, ws: true, changeOrigin: true },
      "/api": { target, changeOrigin: true },
      "/v1": { target, changeOrigin: true },
    },
  },
  build: {
    outDir: "dist",
    sourcemap: false,
    chunkSizeWarningLimit: 700,
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.tsx"],
    css: false,
    restoreMocks: true,
    clearMocks: true,
  },
});
