#!/usr/bin/env bash
# Fetch Debian's kernels of every generation the oracle checks, without installing them:
# 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie, and its cloud flavour) and the newest (sid).
#
# The suites are added beside the machine's own, from the same archive (the URIs line of its
# sources file: no host is named here), pinned at priority 50 so nothing on the machine is
# ever installed or upgraded from them. Each image package is fetched with `apt-get download`
# and unpacked with `dpkg-deb -x`; DEST/<name>/vmlinuz and DEST/<name>/config are what the
# oracle boots (FASTINIT_ORACLE_KERNEL=DEST/<name>/vmlinuz). Run as root; safe to run again
# (kernels already unpacked are kept).
#
#   tests/qemu_oracle/fetch_kernels.sh [DEST]     (default /var/cache/fastinit-kernels)
set -euo pipefail
dest=${1:-/var/cache/fastinit-kernels}
sources=/etc/apt/sources.list.d/debian.sources
extra=/etc/apt/sources.list.d/fastinit-oracle.sources
prefs=/etc/apt/preferences.d/fastinit-oracle

# The machine's own archive: the first URIs line not for security updates.
uri=""
if [ -r "$sources" ]; then
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$sources")
fi
if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
    echo "fetch_kernels: no Debian archive in $sources or /etc/apt/sources.list" >&2
    exit 2
fi

suites="bullseye trixie sid"
if [ ! -e "$extra" ]; then
    cat >"$extra" <<SOURCES
Types: deb
URIs: $uri
Suites: $suites
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
if [ ! -e "$prefs" ]; then
    for suite in $suites; do
        printf 'Package: *\nPin: release n=%s\nPin-Priority: 50\n\n' "$suite"
    done >"$prefs"
fi
apt-get update -qq

# The versioned package a meta package depends on (linux-image-6.12.43+deb13-amd64, ...).
versioned() {  # meta suite prefix
    apt-cache depends "$1/$2" 2>/dev/null \
        | awk -v p="$3" '$1 ~ /Depends:/ && index($2, p) == 1 {print $2; exit}'
}

unpack() {  # name package suite
    local name=$1 package=$2 suite=$3 dir="$dest/$1"
    if [ -s "$dir/vmlinuz" ]; then
        echo "$name: $(cat "$dir/package") (cached)"
        return
    fi
    local work
    work=$(mktemp -d)
    (cd "$work" && apt-get download -qq "$package/$suite")
    mkdir -p "$dir/root"
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
    # sid's image package is a wrapper: the image sits in linux-binary-<version>.
    if ! compgen -G "$dir/root/boot/vmlinuz-*" >/dev/null \
            && ! compgen -G "$dir/root/usr/lib/modules/*/vmlinuz" >/dev/null; then
        local binary
        binary=$(apt-cache depends "$package/$suite" \
            | awk '$1 ~ /Depends:/ && $2 ~ /^linux-binary-/ {print $2; exit}')
        (cd "$work" && apt-get download -qq "$binary/$suite")
        for deb in "$work"/linux-binary-*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
    fi
    local image config
    image=$(compgen -G "$dir/root/boot/vmlinuz-*" || compgen -G "$dir/root/usr/lib/modules/*/vmlinuz")
    config=$(compgen -G "$dir/root/boot/config-*" || compgen -G "$dir/root/usr/lib/modules/*/config" || true)
    cp "$image" "$dir/vmlinuz"
    [ -n "$config" ] && cp "$config" "$dir/config"
    echo "$package" >"$dir/package"
    rm -rf "$dir/root" "$work"
    echo "$name: $package"
}

mkdir -p "$dest"
unpack 5.10 "$(versioned linux-image-amd64 bullseye linux-image-5)" bullseye
unpack 6.1 "$(versioned linux-image-amd64 bookworm linux-image-6)" bookworm
unpack 6.12 "$(versioned linux-image-amd64 trixie linux-image-6)" trixie
unpack 6.12-cloud "$(versioned linux-image-cloud-amd64 trixie linux-image-6)" trixie
unpack sid "$(versioned linux-image-amd64 sid linux-image-)" sid
