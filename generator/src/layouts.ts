import { Faker, base, en, generateMersenne53Randomizer } from '@faker-js/faker';
import { CSV_HEADER, formatCents, formatCsvLine, formatEventTime, pick, revenueCents, uuidV4, type Event } from './events.ts';

export const LAYOUT_NAMES = ['canonical', 'rees46', 'segment', 'semicolon'] as const;
export type LayoutName = (typeof LAYOUT_NAMES)[number];

/** Header names of the values a bad row spoils; a layout without a quantity column has none. */
export interface LayoutColumns {
  userId: string;
  eventType: string;
  productId: string;
  price: string;
  quantity?: string;
  eventTime: string;
}

/** How events are written: the shape of a file another tool would export. */
export interface Layout {
  readonly name: LayoutName;
  readonly delimiter: ',' | ';';
  readonly header: readonly string[];
  readonly columns: LayoutColumns;
  /** An event type outside the layout's vocabulary. */
  readonly unknownEventType: string;
  /** One line with its "\n". No field holds the delimiter, a quote or a line break, so none is quoted. */
  line(event: Event): string;
  /** What the line states the event earned, in cents. */
  revenueCents(event: Event): number;
}

export const CANONICAL: Layout = {
  name: 'canonical',
  delimiter: ',',
  header: CSV_HEADER.split(','),
  columns: { userId: 'user_id', eventType: 'event_type', productId: 'product_id', price: 'price', quantity: 'quantity', eventTime: 'event_time' },
  unknownEventType: 'teleport',
  line: formatCsvLine,
  revenueCents,
};

// Drawn from randomizers of their own, seeded from the run's seed, so that the same seed writes
// the same events in every layout: a layout only adds what the canonical events lack.
const LAYOUT_SALT = 0x9e37_79b9;
const CATEGORIES = 40;
const BRANDS = 60;
/** Chance that a shopper's next event starts a new session. */
const SESSION_END = 0.05;
/** Shares of views written as an add to, or a removal from, the cart. */
const CART = 0.06;
const CART_REMOVAL = 0.02;
const DEVICES = ['desktop', 'mobile', 'tablet'] as const;

interface Shopper {
  /** Numeric, as REES46 writes user ids. */
  id: string;
  anonymousId: string;
  device: string;
  country: string;
  session: string;
}

interface Item {
  /** Numeric, as REES46 writes product ids. */
  id: string;
  categoryId: string;
  /** REES46's dotted code, empty for some categories as in the real data. */
  categoryCode: string;
  category: string;
  brand: string;
}

type Action = 'view' | 'cart' | 'cart-removal' | 'purchase';

/** What other tools record beside an event: numeric ids, categories, brands, sessions, devices. */
function createCatalogue(seed: number) {
  const randomizer = generateMersenne53Randomizer((seed ^ LAYOUT_SALT) >>> 0);
  const faker = new Faker({ locale: [en, base], randomizer });
  const next = () => randomizer.next();
  const nextWord = () => Math.floor(randomizer.next() * 0x1_0000_0000);

  const categories = Array.from({ length: CATEGORIES }, () => {
    const department = faker.commerce.department();
    return {
      id: `20${faker.string.numeric({ length: 17, allowLeadingZeros: true })}`,
      code: next() < 1 / 3 ? '' : `${department}.${faker.commerce.product()}`.toLowerCase(),
      name: department,
    };
  });
  // Letters only: a last name may hold an apostrophe or a space.
  const brands = Array.from({ length: BRANDS }, () => faker.person.lastName().toLowerCase().replace(/[^a-z]/g, ''));

  // Numbered in order of first appearance, with gaps, so that ids are unique without a lookup.
  const shoppers = new Map<string, Shopper>();
  const items = new Map<string, Item>();
  let lastShopperId = 510_000_000;
  let lastItemId = 1_000_000;

  return {
    shopper(userId: string): Shopper {
      let shopper = shoppers.get(userId);
      if (!shopper) {
        lastShopperId += 1 + faker.number.int({ max: 9999 });
        shopper = { id: String(lastShopperId), anonymousId: uuidV4(nextWord), device: pick(DEVICES, next()), country: faker.location.countryCode(), session: uuidV4(nextWord) };
        shoppers.set(userId, shopper);
      }
      return shopper;
    },
    item(productId: string): Item {
      let item = items.get(productId);
      if (!item) {
        lastItemId += 1 + faker.number.int({ max: 999 });
        const category = pick(categories, next());
        item = { id: String(lastItemId), categoryId: category.id, categoryCode: category.code, category: category.name, brand: next() < 0.15 ? '' : pick(brands, next()) };
        items.set(productId, item);
      }
      return item;
    },
    session(shopper: Shopper): string {
      if (next() < SESSION_END) shopper.session = uuidV4(nextWord);
      return shopper.session;
    },
    action(event: Event): Action {
      if (event.eventType === 'purchase') return 'purchase';
      const r = next();
      return r < CART ? 'cart' : r < CART + CART_REMOVAL ? 'cart-removal' : 'view';
    },
  };
}

/** "2026-01-01 00:00:00": to the second, without a zone. */
function naiveSecond(ms: number): string {
  const iso = formatEventTime(ms);
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
}

const REES46_ACTIONS: Record<Action, string> = { view: 'view', cart: 'cart', 'cart-removal': 'remove_from_cart', purchase: 'purchase' };
const SEGMENT_ACTIONS: Record<Action, string> = { view: 'Product Viewed', cart: 'Product Added', 'cart-removal': 'Product Removed', purchase: 'Order Completed' };

/** The layout called `name`; all but the canonical one keep state, so a run creates its own. */
export function createLayout(name: LayoutName, seed: number): Layout {
  if (name === 'canonical') return CANONICAL;
  const catalogue = createCatalogue(seed);
  switch (name) {
    // The REES46 e-commerce behaviour data set: no event id, no quantity (a purchase row is one unit).
    case 'rees46':
      return {
        name,
        delimiter: ',',
        header: ['event_time', 'event_type', 'product_id', 'category_id', 'category_code', 'brand', 'price', 'user_id', 'user_session'],
        columns: { userId: 'user_id', eventType: 'event_type', productId: 'product_id', price: 'price', eventTime: 'event_time' },
        unknownEventType: 'teleport',
        line(e) {
          const item = catalogue.item(e.productId);
          const shopper = catalogue.shopper(e.userId);
          const type = REES46_ACTIONS[catalogue.action(e)];
          return `${naiveSecond(e.eventTime)} UTC,${type},${item.id},${item.categoryId},${item.categoryCode},${item.brand},${formatCents(e.priceCents)},${shopper.id},${catalogue.session(shopper)}\n`;
        },
        revenueCents: (e) => (e.eventType === 'purchase' ? e.priceCents : 0),
      };
    // A Segment track-event export: its own column names and event names, two columns more.
    case 'segment':
      return {
        name,
        delimiter: ',',
        header: ['messageId', 'anonymousId', 'userId', 'event', 'sku', 'price', 'quantity', 'currency', 'timestamp'],
        columns: { userId: 'userId', eventType: 'event', productId: 'sku', price: 'price', quantity: 'quantity', eventTime: 'timestamp' },
        unknownEventType: 'Product Teleported',
        line(e) {
          const shopper = catalogue.shopper(e.userId);
          const event = SEGMENT_ACTIONS[catalogue.action(e)];
          return `${e.eventId},${shopper.anonymousId},${e.userId},${event},${e.productId},${formatCents(e.priceCents)},${e.quantity},USD,${formatEventTime(e.eventTime)}\n`;
        },
        revenueCents,
      };
    // A European spreadsheet export: ';' between fields (the decimal point stays '.'), times
    // without a zone (the UTC wall clock), and five columns more than the canonical seven.
    case 'semicolon':
      return {
        name,
        delimiter: ';',
        header: [...CANONICAL.header, 'session_id', 'brand', 'category', 'device_type', 'country'],
        columns: CANONICAL.columns,
        unknownEventType: 'teleport',
        line(e) {
          const item = catalogue.item(e.productId);
          const shopper = catalogue.shopper(e.userId);
          return `${e.eventId};${e.userId};${e.eventType};${e.productId};${formatCents(e.priceCents)};${e.quantity};${naiveSecond(e.eventTime)};${catalogue.session(shopper)};${item.brand};${item.category};${shopper.device};${shopper.country}\n`;
        },
        revenueCents,
      };
  }
}
