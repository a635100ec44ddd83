#!/usr/bin/env bash
# Runs every camgate test: formatting, lints, licences, unit, property and
# integration tests against real peers. Installs the peers it needs when they
# are missing (apt for GStreamer/FFmpeg, pip for FFmpeg 9, cargo for
# cargo-deny), so it works on a fresh Debian machine with a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

# --- peers -------------------------------------------------------------------
APT_PACKAGES=(
    ffmpeg jq socat sip-tester
    gstreamer1.0-tools gir1.2-gst-rtsp-server-1.0 libgstrtspserver-1.0-0
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gir1.2-gstreamer-1.0
    python3-gi python3-gst-1.0
    systemd adduser
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=python3
if ! "$PY" -c 'import imageio_ffmpeg' 2>/dev/null; then
    log "installing imageio-ffmpeg (FFmpeg 9) from PyPI"
    "$PY" -m pip install -q imageio-ffmpeg==0.8.1
fi
# Schemathesis (tests/it/openapi.rs) checks the API against its OpenAPI document.
if [ "$(schemathesis --version 2>/dev/null)" != "schemathesis, version 4.32.5" ]; then
    log "installing schemathesis from PyPI"
    "$PY" -m pip install -q schemathesis==4.32.5
fi
CAMGATE_FFMPEG9="$("$PY" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
export CAMGATE_FFMPEG9

# Browser tests (tests/it/browser.rs, tests/it/ui.rs): Debian's chromium driven by
# playwright-core, hls.js served to the page; both from tests/browser's lock.
# Checked by command, not package: a node from elsewhere (NodeSource) brings
# its own npm, and Debian's npm package would conflict with it.
browser_missing=()
[ -x /usr/bin/chromium ] || browser_missing+=(chromium)
command -v node >/dev/null || browser_missing+=(nodejs)
command -v npm >/dev/null || browser_missing+=(npm)
# The web UI test (tests/it/ui.rs) saves Chinese screenshots: a CJK font
# makes them readable (the test itself does not depend on it).
{ command -v fc-list >/dev/null && fc-list :lang=zh | grep -q .; } || browser_missing+=(fonts-wqy-microhei)
if [ "${#browser_missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${browser_missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${browser_missing[@]}" >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/hls.js ]; then
    log "npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund)
fi

if ! command -v cargo-deny >/dev/null; then
    log "installing cargo-deny"
    cargo install --locked cargo-deny
fi

# Packaging (tests/it/appliance.rs builds a .deb; the Yocto layer is linted).
if ! command -v cargo-deb >/dev/null; then
    log "installing cargo-deb"
    cargo install --locked cargo-deb
fi
if ! command -v oelint-adv >/dev/null; then
    log "installing oelint-adv from PyPI"
    "$PY" -m pip install -q oelint-adv
fi

# Real captures live beside the repository, never inside it.
if [ -z "${CAMGATE_REAL_FIXTURES:-}" ] && [ -d ../shared/fixtures ]; then
    CAMGATE_REAL_FIXTURES="$(cd ../shared/fixtures && pwd)"
    export CAMGATE_REAL_FIXTURES
fi

log "peers: $(/usr/bin/ffmpeg -version | head -1); FFmpeg 9: $("$CAMGATE_FFMPEG9" -version | head -1); $(gst-inspect-1.0 --version | sed -n 2p)"

# --- checks ------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --locked --all-targets -- -D warnings

log "cargo deny check licenses"
cargo deny --log-level error check licenses

log "Yocto layer: crate list matches Cargo.lock, oelint-adv finds no error"
crates_inc=yocto/meta-camgate/recipes-multimedia/camgate/camgate-crates.inc
cp "$crates_inc" "$crates_inc.committed"
bash yocto/update-crates.sh >/dev/null
if ! cmp -s "$crates_inc" "$crates_inc.committed"; then
    mv "$crates_inc.committed" "$crates_inc"
    echo "$crates_inc is stale: run yocto/update-crates.sh and commit it" >&2
    exit 1
fi
rm "$crates_inc.committed"
for release in scarthgap walnascar; do
    # homepageping would reach the network; the homepage is a placeholder.
    lint="$(cd yocto && oelint-adv --quiet --release "$release" --suppress oelint.vars.homepageping \
        meta-camgate/recipes-multimedia/camgate/camgate_0.1.0.bb 2>&1 || true)"
    printf '%s\n' "$lint" >&2
    if printf '%s\n' "$lint" | grep -q ':error:'; then
        echo "oelint-adv ($release) reports errors" >&2
        exit 1
    fi
done

log "cargo test"
cargo test --locked --all-targets
