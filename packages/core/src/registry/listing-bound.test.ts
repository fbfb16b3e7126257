import { describe, expect, it } from 'vitest';
import { RegistryError } from '../errors.js';
import { ListingBound, MAX_LISTING_PAGES } from './listing-bound.js';

const SUBJECT = 'registry r.example listed the tags of team/app';

describe('ListingBound', () => {
  it('passes distinct pages within the bounds', () => {
    const bound = new ListingBound(SUBJECT, 'r.example', { maxPages: 3, maxBytes: 300 });
    for (const page of ['/a', '/b', '/c']) {
      bound.page(page);
      bound.read(100);
    }
  });

  it('stops a page named again: a loop, said as one', () => {
    const bound = new ListingBound(SUBJECT, 'r.example', { hint: 'try later' });
    bound.page('/a');
    bound.page('/b');
    const error = (() => {
      try {
        bound.page('/a');
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(`${SUBJECT} in a loop (page 3 is one it gave before); stopped`);
    expect((error as RegistryError).hint).toBe('try later');
    expect((error as RegistryError).registry).toBe('r.example');
  });

  it('stops the page after the most pages, and by default after MAX_LISTING_PAGES', () => {
    const bound = new ListingBound(SUBJECT, 'r.example', { maxPages: 2 });
    bound.page('/a');
    bound.page('/b');
    expect(() => bound.page('/c')).toThrow(`${SUBJECT} in more than 2 pages; stopped`);
    const byDefault = new ListingBound(SUBJECT, 'r.example');
    for (let i = 0; i < MAX_LISTING_PAGES; i++) byDefault.page(`/${i}`);
    expect(() => byDefault.page('/last')).toThrow(`in more than ${MAX_LISTING_PAGES} pages`);
  });

  it('stops at the page that takes the bytes read past the bound', () => {
    const bound = new ListingBound(SUBJECT, 'r.example', { maxBytes: 1024 });
    bound.page('/a');
    bound.read(1024);
    bound.page('/b');
    expect(() => bound.read(1)).toThrow(`${SUBJECT} in more than 1 KiB (2 pages); stopped`);
  });
});
