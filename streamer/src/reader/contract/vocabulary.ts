import { normaliseName } from './columns.ts';

/**
 * The event types dropstream knows, each with the names other tools give it, normalised: the
 * REES46 e-commerce data set (view, cart, remove_from_cart, purchase), Segment's e-commerce spec
 * (Product Viewed, Product Added, Order Completed, …), Snowplow's ecommerce action types
 * (product_view, add_to_cart, transaction, refund, …), GA4 and RetailRocket (addtocart, transaction).
 * The canonical name is what is stored; view and purchase are what the revenue views count.
 */
export const BUILT_IN_EVENT_TYPES: Readonly<Record<string, readonly string[]>> = {
  view: ['product_view', 'product_viewed', 'page_view', 'pageview', 'viewed', 'view_item'],
  purchase: ['buy', 'order', 'order_completed', 'completed_order', 'transaction', 'product_purchase', 'purchased'],
  add_to_cart: ['cart', 'addtocart', 'product_added', 'added_to_cart'],
  remove_from_cart: ['removefromcart', 'product_removed', 'removed_from_cart'],
  wishlist: ['add_to_wishlist', 'product_added_to_wishlist'],
  search: ['products_searched', 'product_searched', 'searched'],
  checkout: ['checkout_started', 'checkout_step', 'begin_checkout'],
  refund: ['order_refunded', 'refunded'],
  click: ['product_clicked', 'list_click'],
};

/** Which event_type values are accepted, and what each is stored as. */
export interface EventVocabulary {
  /** Normalised name → the canonical type stored. */
  names: ReadonlyMap<string, string>;
  /** The canonical types, in the order they were listed (the fast path tries them in this order). */
  types: readonly string[];
  /** `*`: any other value is accepted too, stored as normalised. */
  anyToken: boolean;
  /** The --event-types list when it replaces the built-in vocabulary; undefined when it extends it. */
  replacedBy: readonly string[] | undefined;
}

function vocabulary(types: string[], anyToken: boolean, replacedBy: string[] | undefined): EventVocabulary {
  const names = new Map<string, string>();
  for (const type of types) for (const name of BUILT_IN_EVENT_TYPES[type] ?? []) names.set(name, type);
  for (const type of types) names.set(type, type);
  return { names, types, anyToken, replacedBy };
}

export const BUILT_IN_VOCABULARY: EventVocabulary = vocabulary(Object.keys(BUILT_IN_EVENT_TYPES), false, undefined);

/**
 * --event-types: empty for the built-in vocabulary; `+click,teleport` adds types to it; a plain
 * list (`view,purchase`) replaces it, each listed built-in type keeping its synonyms; `*` accepts
 * any value. Returns what is wrong with it instead, as a string.
 */
export function parseEventTypes(text: string): EventVocabulary | string {
  const trimmed = text.trim();
  const listed = trimmed.split(',').map((t) => normaliseName(t.trim().replace(/^\+/, '')));
  if (listed.some((t) => /[\t\n\r\\]/.test(t))) return 'must not hold tabs, line breaks or backslashes';
  const anyToken = listed.includes('*');
  const names = [...new Set(listed.filter((t) => t !== '' && t !== '*'))];
  // `*` alone is the built-in vocabulary and any other value.
  const extend = trimmed.startsWith('+') || names.length === 0;
  if (trimmed !== '' && !anyToken && names.length === 0) return "must list event types (view,purchase), add to the built-in ones (+click) or be '*'";
  if (extend) {
    const known = BUILT_IN_VOCABULARY.names;
    return vocabulary([...BUILT_IN_VOCABULARY.types, ...names.filter((t) => !known.has(t))], anyToken, undefined);
  }
  return vocabulary(names, anyToken, names);
}

/**
 * --event-synonyms `purchase=bought,paid;add_to_cart=basket`: more names for types of the
 * vocabulary. A name the built-in vocabulary gives another type is taken over; an event type's own
 * name is not. Returns what is wrong instead, as a string.
 */
export function withSynonyms(base: EventVocabulary, text: string): EventVocabulary | string {
  const names = new Map(base.names);
  for (const part of text.split(';').map((p) => p.trim()).filter(Boolean)) {
    const [target = '', list = ''] = part.split('=').map((x) => x.trim());
    const type = normaliseName(target);
    if (!base.types.includes(type)) return `maps names to '${target}', which is not an event type (${base.types.join(', ')}; add it with --event-types)`;
    const synonyms = list.split(',').map(normaliseName).filter(Boolean);
    if (synonyms.length === 0) return `gives no names for ${type} (write ${type}=name1,name2)`;
    for (const synonym of synonyms) {
      if (base.types.includes(synonym) && synonym !== type) return `maps '${synonym}' to ${type}, but '${synonym}' is an event type itself`;
      names.set(synonym, type);
    }
  }
  return { ...base, names };
}

/** The type stored for an event_type value, or undefined when the vocabulary does not accept it. */
export function eventTypeOf(vocabulary: EventVocabulary, value: string): string | undefined {
  const name = normaliseName(value);
  return vocabulary.names.get(name) ?? (vocabulary.anyToken && name !== '' ? name : undefined);
}

/** The reason a value outside the vocabulary is rejected: it names the setting that would accept it. */
export function unknownEventType(vocabulary: EventVocabulary, value: string): string {
  const name = normaliseName(value);
  const synonyms = `or name the type it stands for with --event-synonyms, e.g. purchase=${name}`;
  const listed = vocabulary.replacedBy;
  if (!listed) return `event_type '${value}' is not in the event vocabulary: accept it with --event-types +${name}, ${synonyms}`;
  const builtIn = BUILT_IN_VOCABULARY.names.get(name);
  const meaning = builtIn && builtIn !== name ? ` ('${name}' is a built-in name for ${builtIn})` : '';
  return `event_type '${value}' is not one of ${listed.join(', ')}${meaning}: accept it with --event-types ${[...listed, builtIn ?? name].join(',')}, ${synonyms}`;
}
