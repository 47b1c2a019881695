#!/usr/bin/env bash
# Makes the certificates for etcd over TLS with client certificates: a CA,
# one server certificate per etcd member and one client certificate per
# cvmd (CN = its host name), EC P-256, all signed by the CA.
#
#   scripts/etcd-certs.sh DIR [--server NAME=IP[,IP...]]... [--client NAME]...
#
# writes DIR/ca.crt (give it to every member and cvmd), DIR/ca.key (keep it
# off the nodes), DIR/server-NAME.{crt,key} and DIR/client-NAME.{crt,key}.
# An existing CA in DIR is reused, so nodes can be added later. Keys are
# 0600. etcd then runs with --cert-file, --key-file, --client-cert-auth and
# --trusted-ca-file=ca.crt on https:// client URLs, and each cvmd with
#   --store 'etcds://IP:2379/cvm?ca=DIR/ca.crt&cert=DIR/client-NAME.crt&key=DIR/client-NAME.key'
set -euo pipefail

usage() {
	sed -n '2,14p' "$0" >&2
	exit 2
}
(($# >= 1)) || usage
dir=$1
shift
mkdir -p "$dir"
umask 077
days=3650

if [[ ! -f "$dir/ca.crt" ]]; then
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$days" \
		-subj "/O=CVM/CN=cvm etcd CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	chmod 0644 "$dir/ca.crt"
fi

# sign NAME EXTENSIONS: DIR/NAME.key and DIR/NAME.crt signed by the CA.
sign() {
	local name=$1 ext=$2 cn=$3
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$dir/$name.key" -out "$dir/$name.csr" \
		-subj "/O=CVM/CN=$cn" 2>/dev/null
	printf '%s\n' "$ext" >"$dir/$name.ext"
	openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" \
		-CAkey "$dir/ca.key" -CAcreateserial -out "$dir/$name.crt" \
		-days "$days" -extfile "$dir/$name.ext" 2>/dev/null
	rm -f "$dir/$name.csr" "$dir/$name.ext"
	chmod 0644 "$dir/$name.crt"
}

while (($#)); do
	case $1 in
	--server)
		[[ ${2:-} == *=* ]] || usage
		name=${2%%=*} ips=${2#*=} san=""
		IFS=, read -r -a list <<<"$ips"
		for ip in "${list[@]}"; do san+="${san:+,}IP:$ip"; done
		sign "server-$name" "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth
keyUsage=critical,digitalSignature" "$name"
		shift 2
		;;
	--client)
		[[ -n ${2:-} ]] || usage
		sign "client-$2" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature" "$2"
		shift 2
		;;
	*) usage ;;
	esac
done
