#!/usr/bin/env bash
# rgp-injector's certificate without cert-manager.
#
#   deploy/gen-certs.sh              make/renew the certificate, store it in the Secret,
#                                    apply the MutatingWebhookConfiguration with its CA
#   deploy/gen-certs.sh --no-apply   only write the files (and webhook.yaml) into the dir
#
# Files go to $RGP_CERT_DIR (default ./rgp-injector-certs): ca.crt/ca.key (a CA made on the
# first run and KEPT on later runs, so a renewal only re-signs the serving certificate and
# the caBundle stays valid), tls.crt/tls.key (ECDSA P-256, for the webhook's Service names,
# valid $RGP_CERT_DAYS days, default 365), webhook.yaml (deploy/webhook-manual.yaml with
# clientConfig.caBundle filled in). Keep ca.key somewhere safe or delete it.
#
# Renewal: run it again before tls.crt expires. The kubelet updates the Secret volume in
# the webhook's pods within about a minute and rgp-injector reloads the files by itself:
# no restart. Needs openssl, and kubectl with rights to write Secrets in the webhook's
# namespace and MutatingWebhookConfigurations.
set -euo pipefail

NS=rust-grpc-proxy-system
SVC=rust-grpc-proxy-injector
SECRET=rust-grpc-proxy-injector-tls
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${RGP_CERT_DIR:-./rgp-injector-certs}"
DAYS="${RGP_CERT_DAYS:-365}"
APPLY=1
case "${1:-}" in
  --no-apply) APPLY=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-apply]" >&2; exit 2 ;;
esac

mkdir -p "$DIR"
chmod 700 "$DIR"
umask 077
if [ ! -s "$DIR/ca.key" ] || [ ! -s "$DIR/ca.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=rust-grpc-proxy-injector CA" -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
  echo "new CA: $DIR/ca.crt"
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=$SVC.$NS.svc" -keyout "$DIR/tls.key.new" -out "$DIR/tls.csr" 2>/dev/null
printf '%s\n' \
  "subjectAltName=DNS:$SVC,DNS:$SVC.$NS,DNS:$SVC.$NS.svc,DNS:$SVC.$NS.svc.cluster.local" \
  "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=serverAuth" > "$DIR/tls.ext"
openssl x509 -req -in "$DIR/tls.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
  -days "$DAYS" -extfile "$DIR/tls.ext" -out "$DIR/tls.crt.new" 2>/dev/null
mv "$DIR/tls.key.new" "$DIR/tls.key"
mv "$DIR/tls.crt.new" "$DIR/tls.crt"
rm -f "$DIR/tls.csr" "$DIR/tls.ext"
openssl verify -CAfile "$DIR/ca.crt" "$DIR/tls.crt" >/dev/null

CA_BUNDLE="$(base64 < "$DIR/ca.crt" | tr -d '\n')"
sed "s|^    # caBundle: set by deploy/gen-certs.sh\$|    caBundle: $CA_BUNDLE|" "$HERE/webhook-manual.yaml" > "$DIR/webhook.yaml"
grep -q "caBundle: $CA_BUNDLE" "$DIR/webhook.yaml"
echo "wrote $DIR/tls.crt, $DIR/tls.key (valid $DAYS days), $DIR/webhook.yaml"

if [ "$APPLY" = 1 ]; then
  kubectl -n "$NS" create secret tls "$SECRET" --cert="$DIR/tls.crt" --key="$DIR/tls.key" \
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -f "$DIR/webhook.yaml"
fi
