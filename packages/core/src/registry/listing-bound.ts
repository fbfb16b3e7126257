import { RegistryError } from '../errors.js';
import { formatBytes } from '../net/net-fetch.js';

/**
 * The bytes of tag-listing pages a listing reads in all before it stops: core's listTags, the gcr
 * and Docker Hub listings (a million tags take some 60 MiB of a registry's pages, Google's manifest
 * map some 300 bytes an image, the Hub's JSON some 1 KiB a tag; a thousand pages of 4 MiB would be
 * 4 GiB held).
 */
export const MAX_LISTING_BYTES = 256 * 1024 * 1024;

/** The pages of one tag listing read at most (a thousand tags a page: a million tags). */
export const MAX_LISTING_PAGES = 1000;

export interface ListingBoundOptions {
  /** Pages read at most (default {@link MAX_LISTING_PAGES}). */
  maxPages?: number;
  /** Bytes of pages read in all at most (default {@link MAX_LISTING_BYTES}). */
  maxBytes?: number;
  /** The hint of the error that stops the listing. */
  hint?: string;
}

/**
 * The bounds of one paged listing (core's listTags, the gcr and Docker Hub listings): a registry
 * naming a page it already gave, or distinct pages without end, would be asked forever and its
 * pages held. Stops it with a RegistryError that says which bound it passed: a page named again,
 * more than `maxPages` pages, or more than `maxBytes` of pages in all.
 */
export class ListingBound {
  readonly #seen = new Set<string>();
  #bytes = 0;
  readonly #subject: string;
  readonly #registry: string;
  readonly #options: ListingBoundOptions;

  /** `subject` says who lists what, e.g. `registry gcr.io listed the tags of p/app`. */
  constructor(subject: string, registry: string, options: ListingBoundOptions = {}) {
    this.#subject = subject;
    this.#registry = registry;
    this.#options = options;
  }

  /** Before a page is read: `page` (its path or URL) is neither one read before nor one too many. */
  page(page: string): void {
    if (this.#seen.has(page)) throw this.#stop(`in a loop (page ${this.#seen.size + 1} is one it gave before)`);
    const maxPages = this.#options.maxPages ?? MAX_LISTING_PAGES;
    if (this.#seen.size >= maxPages) throw this.#stop(`in more than ${maxPages} pages`);
    this.#seen.add(page);
  }

  /** After a page is read: its `bytes` do not take the pages read past the bound. */
  read(bytes: number): void {
    this.#bytes += bytes;
    const maxBytes = this.#options.maxBytes ?? MAX_LISTING_BYTES;
    if (this.#bytes > maxBytes) throw this.#stop(`in more than ${formatBytes(maxBytes)} (${this.#seen.size} pages)`);
  }

  #stop(how: string): RegistryError {
    return new RegistryError(`${this.#subject} ${how}; stopped`, { registry: this.#registry }, this.#options.hint ? { hint: this.#options.hint } : {});
  }
}
