# bash completion for image-migrator. The commands and each command's flags are read from the
# binary's own --help (once per binary and command, then kept), so they cannot go stale; file names
# are offered after the flags that take a file, and the fixed values after the flags that take one.
# zsh: autoload -U +X bashcompinit && bashcompinit, then source this file.

# _image_migrator_help BINARY [COMMAND]: that --help text, cached.
_image_migrator_help() {
  declare -gA _image_migrator_cache
  local key="$1|${2:-}"
  if [[ -z ${_image_migrator_cache[$key]+set} ]]; then
    _image_migrator_cache[$key]=$("$1" ${2:+"$2"} --help 2>/dev/null)
  fi
  printf '%s\n' "${_image_migrator_cache[$key]}"
}

_image_migrator() {
  local bin=${COMP_WORDS[0]/#\~/$HOME} cur=${COMP_WORDS[COMP_CWORD]} prev="" command="" help
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  # "--auth=FILE": bash splits the word at '=' (COMP_WORDBREAKS).
  if [[ $cur == = ]]; then
    cur=""
  elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
    prev=${COMP_WORDS[COMP_CWORD - 2]}
  fi
  command -v "$bin" >/dev/null 2>&1 || return 0

  local commands
  commands=$(_image_migrator_help "$bin" |
    awk '/^Commands/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && !/^  / { exit }')
  if ((COMP_CWORD > 1)) && grep -qxF -- "${COMP_WORDS[1]}" <<<"$commands"; then
    command=${COMP_WORDS[1]}
  fi
  help=$(_image_migrator_help "$bin" $command)

  if [[ $prev == -* ]]; then
    case "$command:$prev" in
    *:--auth | *:--images | *:--config | *:--log | *:--report | *:--write-failed | *:--digest-cache | \
      config:-o | config:--output | *:-k | *:--kubeconfig | *:--with-pull-secrets)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur"))
      return 0
      ;;
    *:--log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return 0 ;;
    verify:--output) COMPREPLY=($(compgen -W "table json" -- "$cur")); return 0 ;;
    config:--report-format) COMPREPLY=($(compgen -W "json table" -- "$cur")); return 0 ;;
    config:--flatten) COMPREPLY=($(compgen -W "all none" -- "$cur")); return 0 ;;
    rewrite:--format) COMPREPLY=($(compgen -W "kubectl kustomize both" -- "$cur")); return 0 ;;
    esac
    # Another flag that takes a value ("--workers arg" in its help): nothing sensible to offer.
    if grep -Eq -- "(^|[ ,])${prev} arg( |$)" <<<"$help"; then
      COMPREPLY=()
      return 0
    fi
  fi

  local flags
  # The flag each option line starts with ("  -w, --workers arg  ..." -> --workers).
  flags=$(grep -E '^ {1,6}-' <<<"$help" | sed -E 's/^ +(-[A-Za-z0-9], )?(--[a-z0-9][a-z0-9-]*).*/\2/')
  if ((COMP_CWORD == 1)) && [[ $cur != -* ]]; then
    COMPREPLY=($(compgen -W "$commands" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  fi
}
complete -F _image_migrator image-migrator
