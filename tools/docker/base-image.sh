#!/usr/bin/env bash
# base-image.sh [TAG]: build a Debian bookworm base image from Debian's own packages with debootstrap and import it
# into the local engine (make base-image). No image registry is needed: that is how an air-gapped host, or one
# where Docker Hub is out of reach, builds ortserve's images (BASE_IMAGE / PROXY_BASE_IMAGE build arguments).
#
# The image holds Python 3.11 (with venv), nginx and envsubst, and the CA bundle of this host: the extra
# certificates in /usr/local/share/ca-certificates are added at build time (never committed), so that apt and pip
# inside builds work behind a TLS-intercepting proxy. It is rebuilt only when this script or those certificates
# change (a label keeps their hash); FORCE=1 rebuilds it anyway.
set -euo pipefail

tag=${1:-ortserve-base:bookworm}
suite=bookworm
# What the service and proxy Dockerfiles expect of a base: python3 -m venv, nginx, envsubst, useradd, and wget
# (the proxy's health check, as in the public nginx image).
packages=ca-certificates,python3,python3-venv,nginx,gettext-base,passwd,wget
certs_dir=/usr/local/share/ca-certificates

fingerprint=$( { cat "$0"; find "$certs_dir" -name '*.crt' -type f -print0 2>/dev/null | sort -z | xargs -0r cat; } \
  | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{ index .Config.Labels "org.ortserve.base.fingerprint" }}' "$tag" 2>/dev/null || true)
if [ "$current" = "$fingerprint" ] && [ -z "${FORCE:-}" ]; then
  echo ">> base image $tag is up to date"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  echo ">> installing debootstrap"
  apt-get -o DPkg::Lock::Timeout=600 update -q  # a fresh machine has no package lists yet
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends debootstrap
fi

# The Debian mirror this host's apt already uses (an on-premises mirror stays on-premises); deb.debian.org otherwise.
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk -v s="$suite" '$2 == s { print $1; exit }')
mirror=${mirror:-http://deb.debian.org/debian/}

rootfs=$(mktemp -d /var/tmp/ortserve-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo ">> debootstrap $suite from $mirror (a minute or so)"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -20 "$rootfs.log" >&2
  exit 1
}
rm -f "$rootfs.log"

# apt inside builds uses the same mirrors as this host: the suite, its updates and, where apt knows one, security.
security=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | awk -v s="$suite-security" '$2 == s { print $1; exit }')
{
  printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite"
  [ -z "$security" ] || printf 'deb %s %s-security main\n' "$security" "$suite"
} >"$rootfs/etc/apt/sources.list"
if compgen -G "$certs_dir/*.crt" >/dev/null; then
  cp "$certs_dir"/*.crt "$rootfs/usr/local/share/ca-certificates/"
fi
chroot "$rootfs" update-ca-certificates >/dev/null
# As in Debian's own images: packages installed during a build must not try to start their daemons.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"
# nginx's package enables its default site and runs as www-data; the proxy image brings its own config instead.
rm -f "$rootfs/etc/nginx/sites-enabled/default"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/log/*.log "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*

bundle=/etc/ssl/certs/ca-certificates.crt
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change "ENV SSL_CERT_FILE=$bundle PIP_CERT=$bundle REQUESTS_CA_BUNDLE=$bundle LANG=C.UTF-8" \
  --change "LABEL org.ortserve.base.fingerprint=$fingerprint org.ortserve.base.suite=$suite" \
  --change 'CMD ["bash"]' \
  - "$tag" >/dev/null
echo ">> imported $tag ($(docker image inspect -f '{{ .Size }}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
