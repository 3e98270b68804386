import preact from "@preact/preset-vite";
import { defineConfig } from "vitest/config";

// fleetd serves dist/ (fleetd.yaml http.web_root). Its CSP forbids inline
// scripts and styles, so nothing may be inlined into index.html.
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: "dist",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  test: {
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    environment: "node",
  },
});
