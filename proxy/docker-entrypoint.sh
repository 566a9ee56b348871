#!/bin/sh
# The proxy container's entry point: render the nginx config from PROXY_* / *_UPSTREAM variables (envsubst, limited
# to the names the templates use, so nginx's own $variables stay) into a prefix under /tmp, then run nginx in the
# foreground. The same on the public nginx image and on the local Debian base, and on a read-only root file system.
set -eu
src=/etc/ortserve/proxy
PROXY_PREFIX=${PROXY_PREFIX:-/tmp/ortserve-proxy}
PROXY_USER_DIRECTIVE=""  # never root here: the image runs as an unprivileged user
export PROXY_PREFIX PROXY_USER_DIRECTIVE
conf=$PROXY_PREFIX/conf
mkdir -p "$conf/conf.d" "$conf/snippets" "$PROXY_CACHE_DIR"
for sub in client_body proxy fastcgi uwsgi scgi; do mkdir -p "$PROXY_PREFIX/tmp/$sub"; done

names=$(grep -oh '\${[A-Z_][A-Z0-9_]*}' "$src/nginx.conf.template" "$src/ortserve.conf.template" | sort -u)
for name in $names; do
  var=${name#??}; var=${var%?}
  # An unset name would silently become "" in the config: refuse to start instead, naming it.
  eval "[ \"\${$var+set}\" = set ]" || { echo "proxy: $var is not set" >&2; exit 1; }
done
names=$(echo "$names" | tr '\n' ' ')
envsubst "$names" <"$src/nginx.conf.template" >"$conf/nginx.conf"
envsubst "$names" <"$src/ortserve.conf.template" >"$conf/conf.d/ortserve.conf"
cp "$src"/snippets/*.conf "$conf/snippets/"
# -e: the compiled-in error log path (/var/log/nginx) is not writable by this user; log to stderr from the start.
exec nginx -e stderr -p "$PROXY_PREFIX" -c "$conf/nginx.conf" -g 'daemon off;'
