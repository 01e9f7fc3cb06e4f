// The name a download takes: the model's classes (or its file's name) and the date.
import { page } from './state.js';

/** A download's name: the model's classes (or its file's name), today's date and `suffix`,
 * e.g. cat-dog-2025-06-01.kiln, cat-dog-2025-06-01-page.zip; `classes` names it otherwise
 * (a project without a model is named after its dataset's). */
export function fileName(ext, suffix = '', classes = page.modelClasses || []) {
  const day = new Date().toISOString().slice(0, 10);
  const slug = (s) => s.normalize('NFKD').replace(/[^\w-]+/g, '-').replace(/^-+|-+$/g, '').toLowerCase();
  const named = classes.length <= 4 ? classes.map(slug).join('-') : `${classes.slice(0, 3).map(slug).join('-')}-and-${classes.length - 3}-more`;
  const base = (named || slug(page.modelName.replace(/\.kiln$/i, '')) || 'model').slice(0, 80);
  return `${base}-${day}${suffix}.${ext}`;
}
