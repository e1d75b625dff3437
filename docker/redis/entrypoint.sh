#!/bin/sh
# Entrypoint of the redis service in docker-compose.yml: writes Redis's ACL
# file, then execs the command (redis-server ... --aclfile PATH).
#
# Users: default is off (no password, no commands), and gstcapture has the
# rules of gstcapture.acl and the password of the redis_password secret.
# Only the password's SHA-256 goes into the file (#<hex>), which lives on a
# tmpfs and is rebuilt at every start, so a new password or new rules take
# effect with a restart. The password is read from the file and hashed via
# stdin: it is never on a command line.
#
# Runs as the image's redis user (999) without capabilities, so the image's
# own entrypoint (chown, then gosu to redis when started as root) is not
# needed. REDIS_ACL_RULES and REDIS_PASSWORD_FILE override the paths (for
# docker/composecheck, which runs this script).
set -eu

rules=${REDIS_ACL_RULES:-/usr/local/etc/redis/gstcapture.acl}
secret=${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}

fail() {
	echo "redis entrypoint: $*" >&2
	exit 1
}

# The file to write is the command's --aclfile argument, so that its path
# is written once, in the compose file.
aclfile= prev=
for arg in "$@"; do
	if [ "$prev" = --aclfile ]; then aclfile=$arg; fi
	prev=$arg
done
[ -n "$aclfile" ] || fail "the command has no --aclfile PATH"

# An ACL file holds "user" lines only: drop gstcapture.acl's comments.
[ -r "$rules" ] || fail "cannot read the ACL rules $rules"
line=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$rules" | tr -d '\r')
[ -n "$line" ] || fail "$rules has no rule line"
case $line in
*"
"*) fail "$rules has more than one rule line" ;;
esac
# The password comes from the secret alone, and the user name from here.
case " $line " in
*" >"* | *" <"* | *" #"* | *" !"* | *" nopass "* | *" user "*)
	fail "$rules must hold rules only, without a user name or password" ;;
esac

[ -r "$secret" ] || fail "cannot read $secret: the redis_password secret must be readable by uid $(id -u) (docs/operations.md, \"docker compose\")"
password=$(tr -d '\r\n' <"$secret")
[ -n "$password" ] || fail "$secret is empty"
hash=$(printf '%s' "$password" | sha256sum)
hash=${hash%% *}
unset password

umask 077
printf 'user default off resetpass resetkeys resetchannels -@all\nuser gstcapture %s #%s\n' \
	"$line" "$hash" >"$aclfile"

exec "$@"
