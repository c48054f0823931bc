#!/usr/bin/env bash
# Writes the man page image-migrator(1) from the binary's own --help texts, so that it lists every
# command and every flag the binary has, never more or fewer: the top-level --help names the
# commands, each COMMAND --help gives its flags. The prose around them (files, environment, exit
# codes) is written here.
#
#   packaging/make-man.sh BINARY VERSION OUTPUT
set -euo pipefail
bin=$1 version=$2 out=$3

# esc: text on stdin as troff text (backslashes, minus signs, a leading dot or quote).
esc() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

# options HELP_TEXT: the flags of a cxxopts help as .TP paragraphs. A flag line is indented by at most
# six spaces ("  -w, --workers arg   description..."); its description goes on in lines indented further.
options() {
  # (No regex intervals like {1,6}: Debian's default awk, mawk, does not take them.)
  awk '
    function flush() { if (flag != "") { print ".TP"; print "FLAG\t" flag; print "DESC\t" desc } flag = ""; desc = "" }
    { match($0, /^ */); indent = RLENGTH; first = substr($0, indent + 1, 1) }
    indent >= 1 && indent <= 6 && first == "-" {
      flush()
      line = substr($0, indent + 1)
      n = match(line, /  +/)
      if (n) { flag = substr(line, 1, n - 1); desc = substr(line, n + RLENGTH) } else { flag = line; desc = "" }
      next
    }
    indent >= 7 && first != "" && flag != "" {
      line = substr($0, indent + 1); sub(/ +$/, "", desc); desc = desc (desc == "" ? "" : " ") line; next
    }
    { flush() }
    END { flush() }
  ' <<<"$1" | while IFS=$'\t' read -r kind text; do
    case $kind in
      .TP) echo .TP ;;
      FLAG)
        # "-w, --workers arg" -> bold names, italic argument
        names=${text% arg}
        arg=""
        [ "$names" != "$text" ] && arg=" \\fIvalue\\fR"
        printf '\\fB%s\\fR%s\n' "$(esc <<<"$names")" "$arg" ;;
      DESC) sed -e 's/ *$//' <<<"$text" | esc ;;
    esac
  done
}

# description HELP_TEXT: its first paragraph (up to "Usage:" or the command list).
description() { awk '/^Usage:|^Commands/ { exit } NF { print }' <<<"$1" | esc; }

top=$("$bin" --help)
# The commands: the lines "  NAME   summary" under "Commands", except the "(none)" line.
mapfile -t commands < <(awk '/^Commands/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && !/^  / { exit }' <<<"$top")
[ ${#commands[@]} -gt 0 ] || { echo "make-man.sh: no commands found in $bin --help" >&2; exit 1; }

{
  cat <<MAN
.TH IMAGE\\-MIGRATOR 1 "" "image\\-migrator $version" "User Commands"
.SH NAME
image\\-migrator \\- copy container images between registries, digests unchanged; find the images a Kubernetes cluster uses
.SH SYNOPSIS
.B image\\-migrator
[\\fIflags\\fR]
.br
.B image\\-migrator
\\fICOMMAND\\fR [\\fIflags\\fR]
.SH DESCRIPTION
MAN
  description "$top"
  cat <<'MAN'
.PP
Without a command, image\-migrator copies the images that the rules of an images file name
(\fB\-\-images\fR, default ./images.json) with the credentials of an auth file (\fB\-\-auth\fR,
default ./auth.json): concurrently, with retries, manifests byte for byte. The two files' formats
(the eight rules, namespaces, tag filters, OCI layouts, per-registry settings) are described in
/usr/share/doc/image\-migrator/README.md.
.SH OPTIONS
MAN
  options "$top"
  echo ".SH COMMANDS"
  for c in "${commands[@]}"; do
    help=$("$bin" "$c" --help)
    echo ".SS \"image\\-migrator $c\""
    description "$help"
    options "$help"
  done
  cat <<'MAN'
.SH FILES
.TP
\fB./auth.json\fR, \fB./images.json\fR
The default credentials and rules files (JSON or YAML).
.TP
\fB$XDG_CONFIG_HOME/image\-migrator/key\fR (or \fB~/.config/image\-migrator/key\fR)
The key that encrypts passwords in a writable JSON auth file (mode 0600).
.TP
\fB$XDG_CACHE_HOME/image\-migrator/tag\-digests\fR (or \fB~/.cache/image\-migrator/tag\-digests\fR)
The digest each source tag had in the last run (\fB\-\-digest\-cache\fR).
.PP
Files named by flags (\fB\-\-log\fR, \fB\-\-report\fR, \fB\-\-write\-failed\fR, \fB\-o\fR ...) are
never given a directory that does not exist: the run stops before it starts, naming the path.
.SH ENVIRONMENT
.TP
\fBDEFAULT_REGISTRY\fR, \fBDEFAULT_NAMESPACE\fR
Target of rules with an empty destination (the flags win).
.TP
\fBIMAGE_MIGRATOR_KEY\fR
The auth file's encryption key (base64 of 32 bytes) instead of the key file.
.TP
\fBIMAGE_MIGRATOR_STALL_TIMEOUT\fR
Default of \fB\-\-stall\-timeout\fR.
.TP
\fBJOB_COMPLETION_INDEX\fR
The shard index for \fB\-\-shards\fR (set by a Kubernetes Indexed Job).
.TP
\fBKUBECONFIG\fR
Kubeconfig files for \fBconfig\fR and \fBrewrite\fR (then ~/.kube/config, then the in-cluster service account).
.TP
\fBHTTPS_PROXY\fR, \fBHTTP_PROXY\fR, \fBNO_PROXY\fR
Proxies, unless the auth file gives one per registry.
.SH EXIT STATUS
0: everything copied (or the same). 1: some image task or rule failed. 2: usage or configuration
error, one line on standard error naming the file, key or flag. 3 (\fBconfig\fR): the cluster
answered, but the images file is incomplete. 130/143: interrupted by SIGINT/SIGTERM.
.SH SEE ALSO
.BR skopeo (1),
/usr/share/doc/image\-migrator/README.md
MAN
} >"$out.tmp"
mv -f "$out.tmp" "$out"
