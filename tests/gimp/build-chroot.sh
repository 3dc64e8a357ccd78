#!/usr/bin/env bash
# Build, once, a Debian chroot with GIMP 3 that the plug-in's end-to-end tests run in, and print
# its path: `build-chroot.sh trixie` (GIMP 3.0.4, the default) or `build-chroot.sh sid` (GIMP
# 3.2). Later calls find it complete and return at once: it is cached outside the checkout
# (/var/cache/impasto/gimp-SUITE, or $IMPASTO_GIMP_CHROOT), so fresh clones on the same machine
# reuse it. Needs root (debootstrap, chroot, bind mounts).
set -euo pipefail

SUITE=${1:-trixie}
CHROOT=${IMPASTO_GIMP_CHROOT:-/var/cache/impasto/gimp-$SUITE}
# xvfb, xdotool and imagemagick drive and photograph GIMP's real dialogs in the GUI test.
# python3-venv: the installer's test puts a Python without GIMP's bindings first on PATH.
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 python3-zmq python3-msgpack xvfb xdotool imagemagick python3-venv"
# sid's Release file is signed for a week at a time; a snapshot mirror's copy reads as expired.
APT_OPTIONS="-o Acquire::Check-Valid-Until=false"

if [ -f "$CHROOT/.impasto-complete" ]; then
    # Built before: add what the package list gained since (the marker holds the list it has).
    if [ "$(cat "$CHROOT/.impasto-complete")" != "$PACKAGES" ] && [ "$(id -u)" = 0 ]; then
        mounted=
        mountpoint -q "$CHROOT/proc" || { mount -t proc proc "$CHROOT/proc"; mounted=1; }
        chroot "$CHROOT" apt-get $APT_OPTIONS update -qq >&2
        chroot "$CHROOT" env DEBIAN_FRONTEND=noninteractive apt-get $APT_OPTIONS install -y -qq $PACKAGES >&2
        chroot "$CHROOT" apt-get clean
        echo "$PACKAGES" > "$CHROOT/.impasto-complete"
        if [ -n "$mounted" ]; then umount "$CHROOT/proc"; fi
    fi
    echo "$CHROOT"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "build-chroot: needs root to build $CHROOT" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "build-chroot: installing debootstrap" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi

# The Debian mirror this machine's apt already uses (deb822 or one-line format), unless given.
mirror=${IMPASTO_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(awk '/^URIs:/ {uri=$2} /^Suites:/ && uri != "" && $2 !~ /-security$/ {print uri; exit}' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $3 !~ /-security$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
    echo "build-chroot: no Debian mirror found in apt's sources; set IMPASTO_DEBIAN_MIRROR" >&2
    exit 1
fi

echo "build-chroot: debootstrap $SUITE into $CHROOT from $mirror (a few minutes, about 1.3 GB)" >&2
partial="$CHROOT.partial"
if mountpoint -q "$partial/proc" 2>/dev/null; then umount "$partial/proc"; fi
rm -rf "$partial"
mkdir -p "$(dirname "$CHROOT")"
# A bare system first, then apt inside it: debootstrap's own resolver misses some of GIMP's
# dependencies (virtual packages), apt's does not.
debootstrap --variant=minbase "$SUITE" "$partial" "$mirror" >&2
mount -t proc proc "$partial/proc"
trap 'umount "$partial/proc" 2>/dev/null || true' EXIT
chroot "$partial" apt-get $APT_OPTIONS update -qq >&2
chroot "$partial" env DEBIAN_FRONTEND=noninteractive apt-get $APT_OPTIONS install -y -qq $PACKAGES >&2
chroot "$partial" apt-get clean
umount "$partial/proc"
trap - EXIT
echo "$PACKAGES" > "$partial/.impasto-complete"
mv "$partial" "$CHROOT"
echo "$CHROOT"
