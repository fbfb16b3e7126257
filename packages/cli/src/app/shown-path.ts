/** A file as messages name it, and a word or file as a suggested command names it (core's: its own messages and hints name files too); see their docs. */
export { fileArgument, shellWord, shownPath } from '@prebuilt/core';
