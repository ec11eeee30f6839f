#!/usr/bin/env bash
# Builds the page into ../daggr/assets/inspector/ (committed: the crate embeds it with include_str!,
# so building the crate needs no Node). Run after `npm ci` in this folder.
set -euo pipefail
cd "$(dirname "$0")"
out=../daggr/assets/inspector
mkdir -p "$out"
npx esbuild src/main.ts --bundle --minify --format=iife --target=es2020 --outfile=../daggr/assets/inspector/inspector.js --log-level=warning
cp index.html "$out/index.html"
cp src/inspector.css "$out/inspector.css"
cp favicon.svg "$out/favicon.svg"
