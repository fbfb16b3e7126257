/** prebuilt's cache directory and its setting live in core (the CLI needs them without loading this package). */
export { CACHE_DIR_SETTING, prebuiltCacheDir } from '@prebuilt/core';
