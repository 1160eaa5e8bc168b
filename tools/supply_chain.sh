#!/usr/bin/env bash
# The supply chain checks, with pinned tools installed on first use (`cargo install
# --locked`, idempotent: skipped when the pinned version is already on PATH).
#
#   tools/supply_chain.sh deny          cargo-deny: licenses, bans, sources (deny.toml) and
#                                       RustSec advisories. The advisory database is fetched
#                                       when github.com is reachable; offline, the snapshot
#                                       vendored in tools/advisory-db.tar.gz is used instead
#                                       and its age is printed.
#   tools/supply_chain.sh sbom OUT      a CycloneDX 1.5 SBOM (JSON) of each Lambda binary:
#                                       OUT/<function>/bootstrap.cdx.json
#   tools/supply_chain.sh snapshot      refreshes tools/advisory-db.tar.gz from a fresh clone
#                                       of the RustSec database (needs github.com)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO=${CARGO:-cargo}
DENY_VERSION=0.20.2
CYCLONEDX_VERSION=0.5.9
LAMBDAS=(llm-settings generate llm-usage)
ADVISORY_URL=https://github.com/RustSec/advisory-db
# deny.toml's db-path; cargo-deny keeps the database for ADVISORY_URL in this directory
# (its name is cargo-deny's hash of the URL).
DB="$ROOT/target/advisory-dbs/advisory-db-3157b0e258782691"
SNAPSHOT="$ROOT/tools/advisory-db.tar.gz"
# The vendored snapshot's upstream commit and date (written by `snapshot`).
SNAPSHOT_COMMIT=bf5c0d245
SNAPSHOT_DATE=2026-08-21T08:28:40+02:00

# Installs cargo-$1 at version $2 unless that version is already installed.
ensure_tool() {
    local tool=$1 version=$2
    if "$CARGO" "$tool" --version 2>/dev/null | grep -q " $version\$"; then
        return
    fi
    echo "supply-chain: installing cargo-$tool $version (cargo install --locked; once per machine)"
    "$CARGO" install --locked --quiet "cargo-$tool" --version "$version"
}

# The vendored snapshot as the git repository cargo-deny reads (it takes the database's
# age from HEAD's commit date, so the commit carries the snapshot's date).
use_snapshot() {
    rm -rf "$DB"
    mkdir -p "$DB"
    tar -xzf "$SNAPSHOT" -C "$DB"
    (
        cd "$DB"
        git init -q
        git add -A
        GIT_AUTHOR_DATE=$SNAPSHOT_DATE GIT_COMMITTER_DATE=$SNAPSHOT_DATE \
            git -c user.name=vendored -c user.email=vendored@localhost \
            commit -q -m "RustSec advisory-db $SNAPSHOT_COMMIT (vendored snapshot)"
    )
    touch "$DB/.vendored"
}

deny() {
    ensure_tool deny "$DENY_VERSION"
    # cargo-deny reads the graph from `cargo metadata`, which needs every crate of
    # Cargo.lock downloaded (the registry is reachable even when github.com is not).
    "$CARGO" fetch --locked --quiet
    local offline=()
    [[ -f "$DB/.vendored" ]] && rm -rf "$DB"
    if timeout 60 "$CARGO" deny fetch db >/dev/null 2>&1; then
        echo "supply-chain: advisories from the RustSec database, fetched now from $ADVISORY_URL"
    else
        use_snapshot
        local age=$(( ($(date +%s) - $(date -d "$SNAPSHOT_DATE" +%s)) / 86400 ))
        echo "supply-chain: $ADVISORY_URL is not reachable (offline): advisories are checked"
        echo "supply-chain: against the vendored snapshot ($SNAPSHOT_COMMIT of ${SNAPSHOT_DATE%%T*}, $age days old),"
        echo "supply-chain: so advisories published since then are NOT checked; refresh it with"
        echo "supply-chain: 'tools/supply_chain.sh snapshot' on a machine with network access"
        offline=(--offline)
    fi
    echo "supply-chain: cargo deny check (licenses, bans, sources, advisories; deny.toml)"
    "$CARGO" deny "${offline[@]}" --log-level error check --hide-inclusion-graph
}

sbom() {
    local out=${1:?usage: tools/supply_chain.sh sbom OUT_DIR}
    ensure_tool cyclonedx "$CYCLONEDX_VERSION"
    local target
    target=$(rustc -vV | sed -n 's/^host: //p')
    [[ "${ARCH:-x86_64}" == arm64 ]] && target=aarch64-unknown-linux-gnu
    # It writes <crate>/<bin>_bin.cdx.json next to each manifest; they are moved to OUT.
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) \
        "$CARGO" cyclonedx --quiet --format json --spec-version 1.5 --describe binaries \
        --no-build-deps --target "$target"
    for f in "${LAMBDAS[@]}"; do
        mkdir -p "$out/$f"
        mv "functions/$f/${f}_bin.cdx.json" "$out/$f/bootstrap.cdx.json"
        # What an SBOM must get right: it describes this binary, lists what it links
        # (the Lambda runtime, the SDK), and no test-only crate.
        python3 - "$out/$f/bootstrap.cdx.json" "$f" <<'PY'
import json, sys
path, name = sys.argv[1:]
bom = json.load(open(path))
names = {c["name"] for c in bom.get("components", [])}
assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5", path
assert bom["metadata"]["component"]["name"] == name, bom["metadata"]["component"]
missing = {"lambda_http", "aws-config", "shared", "tokio"} - names
assert not missing, f"{path}: {sorted(missing)} missing"
dev = names & {"wiremock", "tempfile"}
assert not dev, f"{path}: test-only crates {sorted(dev)} listed"
PY
        echo "supply-chain: SBOM of $f ($target): $out/$f/bootstrap.cdx.json"
    done
    rm -f functions/*/*_bin.cdx.json
}

snapshot() {
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    git clone --quiet --depth 1 "$ADVISORY_URL" "$tmp/db"
    local commit date
    commit=$(git -C "$tmp/db" log -1 --format=%h)
    date=$(git -C "$tmp/db" log -1 --format=%cI)
    git -C "$tmp/db" archive HEAD | gzip -9 > "$SNAPSHOT"
    sed -i "s/^SNAPSHOT_COMMIT=.*/SNAPSHOT_COMMIT=$commit/; s/^SNAPSHOT_DATE=.*/SNAPSHOT_DATE=$date/" "$0"
    echo "supply-chain: tools/advisory-db.tar.gz is now $commit of $date"
}

case "${1:-}" in
    deny) deny ;;
    sbom) sbom "${2:-}" ;;
    snapshot) snapshot ;;
    *) echo "usage: tools/supply_chain.sh deny | sbom OUT_DIR | snapshot" >&2; exit 2 ;;
esac
