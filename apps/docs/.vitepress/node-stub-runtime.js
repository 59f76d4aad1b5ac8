// What a Node-only import becomes in the docs' browser bundle (see node-stubs.ts): any use throws.

/**
 * A stand-in for `name` that throws on call or construction; its properties are stand-ins too.
 * @param {string} name
 * @returns {any}
 */
export function stub(name) {
  const fail = () => {
    throw new Error(`${name} is Node-only: the browser build of the docs cannot use it`);
  };
  return new Proxy(() => {}, {
    apply: fail,
    construct: fail,
    get: (_, key) => (key === Symbol.toPrimitive ? undefined : stub(`${name}.${String(key)}`)),
  });
}
