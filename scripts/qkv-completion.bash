# bash completion for qkv: commands, their own commands (qkv data prepare) and options, read
# from the help of the qkv being completed, so they are always that binary's. Installed as
# share/bash-completion/completions/qkv; from a source tree: source scripts/qkv-completion.bash

# The commands `qkv WORDS... --help` lists.
_qkv_commands() {
  "$@" --help 2>/dev/null | sed -n '/^Subcommands:/,$ s/^  \([a-z][a-z-]*\)  .*/\1/p'
}

# The options `qkv WORDS... --help` lists: the option column of its help (-h,--help -> both).
_qkv_options() {
  "$@" --help 2>/dev/null | sed -n 's/^  \(-[^ ]*\).*/\1/p' | tr ',' '\n'
}

_qkv() {
  local cur=${COMP_WORDS[COMP_CWORD]} i
  local -a path=("${COMP_WORDS[0]}")
  for ((i = 1; i < COMP_CWORD; i++)); do
    if _qkv_commands "${path[@]}" | grep -qxF -- "${COMP_WORDS[i]}"; then
      path+=("${COMP_WORDS[i]}")
    fi
  done
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_qkv_options "${path[@]}")" -- "$cur")
  else
    # A command's own commands; otherwise nothing, so bash completes file names.
    mapfile -t COMPREPLY < <(compgen -W "$(_qkv_commands "${path[@]}")" -- "$cur")
  fi
}
complete -o default -F _qkv qkv
