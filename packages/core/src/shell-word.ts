/** Words and files as the commands prebuilt suggests (in a hint, on the terminal) name them, quoted for a shell. */

/** A word shells take literally (no quoting needed): not starting with `=`, which zsh expands (`=cmd` is the path of cmd). */
const PLAIN_WORD = /^[A-Za-z0-9_@%+:,./-][A-Za-z0-9_@%+=:,./-]*$/;

/**
 * `word` as a suggested command names it, so it can be pasted into a shell: as it is when the shell
 * takes it literally (`flows/my_flow.py`), else single-quoted (`'my flow.py'`, `'a'\''b.py'`) —
 * a flow file named `x.py; rm -rf ~` is shown as one quoted word, never as a second command.
 */
export function shellWord(word: string): string {
  if (PLAIN_WORD.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * A file as the argument of a suggested command: {@link shellWord}, with `./` before a relative
 * path that starts with `-` (`prebuilt build ./-x.py`: as `-x.py`, the command would read it as an
 * option and stop with "unknown option").
 */
export function fileArgument(file: string): string {
  return shellWord(file.startsWith('-') ? `./${file}` : file);
}
