"""Shell completion: the scripts `devenv completion bash|zsh|fish` prints, and the candidates they ask for.

The scripts are thin, as gh's and docker's are: on TAB they run `devenv __complete WORD…` (the words after
`devenv`, the last one the word being completed) and offer the lines it prints, `value<TAB>description`. The
candidates are read off the argparse parser the command line itself runs with (commands, subcommands, options,
choices), so a new command or option completes with no change here; service and snapshot names come from the
project (`Arg.complete` in devenv.cli.main says which argument takes which).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

FILES = ":files"  # the one candidate that tells a script to complete file names instead

Names = Callable[[str, Path | None], list[str]]  # (kind, project dir) -> the project's names of that kind


def project_names(kind: str, project_dir: Path | None) -> list[str]:
    """The names of KIND ("services", "snapshots") in the project at PROJECT_DIR (default: the current folder).

    Services are the ones its stack has; snapshots are asked of the stack's Postgres (raises when it is not up)."""
    from devenv.project.context import load

    ctx = load(project_dir)
    if kind == "services":
        return list(ctx.stack.services)
    if kind == "snapshots":
        from devenv.commands.snapshots import snapshots

        with ctx.postgres.session(what="the completion", timeout=2.0) as conn:
            return [s.name for s in snapshots(conn, ctx.settings.pg_db)]
    return []


def candidates(parser: argparse.ArgumentParser, words: Sequence[str], names: Names = project_names) -> list[str]:
    """What completes the last of WORDS (the command line after `devenv`), as `value<TAB>description` lines."""
    *before, current = list(words) or [""]
    walk = _Walk(parser)
    for word in before:
        if not walk.take(word):
            return []
    if walk.pending is not None:  # the current word is an option's value
        return _values(walk.pending, current, walk, names)
    if current.startswith("-"):
        return [_line(s, a.help) for a in walk.parser._actions for s in a.option_strings if s.startswith(current)]
    sub = _subparsers(walk.parser)
    if sub is not None:
        return [_line(c.dest, c.help) for c in sub._choices_actions if c.dest.startswith(current)]
    positionals = [a for a in walk.parser._actions if not a.option_strings]
    if not positionals:
        return []
    index = min(len(walk.positionals), len(positionals) - 1)
    action = positionals[index]
    if index < len(walk.positionals) and action.nargs not in ("*", "+"):
        return []  # every positional is given
    return _values(action, current, walk, names)


class _Walk:
    """Where the words typed so far lead: the (sub)parser, its positionals given, an option waiting for its value."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.positionals: list[str] = []
        self.pending: argparse.Action | None = None
        self.project_dir: Path | None = None

    def take(self, word: str) -> bool:
        """Follow WORD; False when what follows it is not devenv's to complete (after `--`, an unknown command)."""
        if self.pending is not None:
            if self.pending.dest == "project_dir":
                self.project_dir = Path(word)
            self.pending = None
        elif word == "--":
            return False
        elif word.startswith("-") and word != "-":
            name, eq, value = word.partition("=")
            option = self.parser._option_string_actions.get(name)
            if option is not None and option.nargs != 0 and not eq:
                self.pending = option
            elif option is not None and option.dest == "project_dir":
                self.project_dir = Path(value)
        else:
            sub = _subparsers(self.parser)
            if sub is None:
                self.positionals.append(word)
            elif word in sub.choices:
                self.parser, self.positionals = sub.choices[word], []
            else:
                return False  # no such command
        return True


def _values(action: argparse.Action, current: str, walk: _Walk, names: Names) -> list[str]:
    """The values ACTION takes that start with CURRENT."""
    if action.choices is not None:
        return [str(c) for c in action.choices if str(c).startswith(current)]
    kind = getattr(walk.parser, "completes", {}).get(action.dest, "")
    if kind:
        given = set(walk.positionals) if action.nargs in ("*", "+") else set()
        return [n for n in names(kind, walk.project_dir) if n.startswith(current) and n not in given]
    if action.type is Path or action.dest == "project_dir":
        return [FILES]
    return []


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _line(value: str, description: str | None) -> str:
    text = " ".join((description or "").split())
    return f"{value}\t{text}" if text and text != argparse.SUPPRESS else value


# -- the scripts --------------------------------------------------------------------------------------------------
BASH = r"""# bash completion for devenv: add `source <(devenv completion bash)` to ~/.bashrc.
_devenv() {
    local cur=${COMP_WORDS[COMP_CWORD]} line
    local -a out=()
    COMPREPLY=()
    while IFS= read -r line; do out+=("$line"); done < <(devenv __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
    if [[ ${out[0]-} == :files ]]; then
        compopt -o filenames 2>/dev/null
        while IFS= read -r line; do COMPREPLY+=("$line"); done < <(compgen -f -- "$cur")
        return 0
    fi
    for line in "${out[@]}"; do COMPREPLY+=("${line%%$'\t'*}"); done
    return 0
}
complete -F _devenv devenv
"""

ZSH = r"""#compdef devenv
# zsh completion for devenv: add `source <(devenv completion zsh)` to ~/.zshrc after compinit, or save it as
# _devenv in a folder on $fpath.
_devenv() {
    local -a out described
    local line
    out=("${(@f)$(devenv __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if [[ ${out[1]} == :files ]]; then
        _files
        return
    fi
    for line in "${out[@]}"; do
        [[ -n $line ]] || continue
        if [[ $line == *$'\t'* ]]; then
            described+=("${${line%%$'\t'*}//:/\\:}:${line#*$'\t'}")
        else
            described+=("${line//:/\\:}")
        fi
    done
    (( ${#described} )) && _describe -t values devenv described
}
if [[ ${funcstack[1]} == _devenv ]]; then
    _devenv "$@"
else
    compdef _devenv devenv
fi
"""

FISH = r"""# fish completion for devenv: devenv completion fish > ~/.config/fish/completions/devenv.fish
function __devenv_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l out (devenv __complete $words[2..-1] "$cur" 2>/dev/null)
    if test "$out[1]" = :files
        __fish_complete_path "$cur"
    else
        printf '%s\n' $out
    end
end
complete -c devenv -f -a '(__devenv_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


def script(shell: str) -> str:
    """The completion script for SHELL (bash, zsh or fish)."""
    return SCRIPTS[shell]
