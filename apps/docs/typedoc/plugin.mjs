// TypeDoc plugin for the sharelora API reference: names each module after the package entry it
// documents, and fails the build when a top-level export has no doc comment.
import { Application, Converter, ReflectionKind } from 'typedoc';

/**
 * `core/src` -> `@sharelora/core`, `adapters/src/node` -> `@sharelora/adapters/node`.
 * @param {string} moduleName
 */
export function packageEntryName(moduleName) {
  const m = /^(?:packages\/)?([\w-]+)\/src(?:\/(node|index))?$/.exec(moduleName);
  if (!m) return moduleName;
  return m[2] === 'node' ? `@sharelora/${m[1]}/node` : `@sharelora/${m[1]}`;
}

/**
 * A declaration is documented by its own comment or, for functions, by a signature's.
 * @param {import('typedoc').DeclarationReflection} reflection
 */
function documented(reflection) {
  if (reflection.hasComment()) return true;
  return (reflection.signatures ?? []).some((s) => s.hasComment());
}

/** @param {Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const mod of context.project.getChildrenByKind(ReflectionKind.Module)) {
      mod.name = packageEntryName(mod.name);
    }
  });

  app.on(Application.EVENT_VALIDATE_PROJECT, (project) => {
    for (const mod of project.getChildrenByKind(ReflectionKind.Module)) {
      for (const child of mod.children ?? []) {
        if (!child.kindOf(ReflectionKind.Reference) && !documented(child))
          app.logger.error(
            `${mod.name}.${child.name} is exported without a doc comment: say what it is and why`,
          );
      }
    }
  });
}
