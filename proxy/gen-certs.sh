#!/usr/bin/env bash
# gen-certs.sh DIR: a local CA and a server certificate it signs (localhost, 127.0.0.1), made once and then reused.
# Clients trust DIR/ca.pem (the OpenAI SDK: http_client=DefaultHttpxClient(verify=...)).
set -euo pipefail
dir=${1:?usage: gen-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
if [ -s ca.pem ] && [ -s server.pem ] && [ -s server.key ]; then
  exit 0
fi
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=ortserve local CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
  "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -extfile server.ext \
  -out server.pem 2>/dev/null
rm -f server.csr server.ext
chmod 644 ca.pem server.pem
echo "generated a local CA ($dir/ca.pem) and a server certificate ($dir/server.pem)"
