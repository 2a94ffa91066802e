import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "smol-toml";
import {
  EXAMPLE_PATH,
  REFERENCE_PATH,
  renderConfigExample,
  renderConfigReference,
} from "../../../scripts/gen-config-docs.js";
import { parseConfigText } from "../../../src/config/load.js";
import { configKeys, type KeySpec } from "../../../src/config/schema.js";

const sections = configKeys(".") as Record<string, Record<string, KeySpec>>;
const example = readFileSync(new URL("../../../doproxy.toml", import.meta.url), "utf8");

describe("the configuration reference", () => {
  it("docs/configuration.md is what the schema generates (run npm run docs:config)", () => {
    assert.equal(readFileSync(REFERENCE_PATH, "utf8"), renderConfigReference());
  });

  it("doproxy.toml is what the schema generates (run npm run docs:config), and it loads", () => {
    assert.equal(example, renderConfigExample());
    const config = parseConfigText(example, EXAMPLE_PATH, { DIGITALOCEAN_TOKEN: "t" });
    assert.equal(config.proxy.maxTargetLength, 8192);
  });

  it("every key has a type, a sentence and a runtime name", () => {
    for (const [section, keys] of Object.entries(sections))
      for (const [name, spec] of Object.entries(keys)) {
        assert.ok(spec.doc.length > 10, `[${section}] ${name}: no sentence`);
        assert.ok(spec.type, `[${section}] ${name}: no type`);
        assert.match(spec.as, /^[a-z][A-Za-z]*$/, `[${section}] ${name}: runtime name`);
      }
  });

  it("doproxy.toml shows every key of the schema, each set one with its default", () => {
    const values = parse(example) as Record<string, Record<string, unknown>>;
    // Split the example into its sections, to find commented-out keys in the right one.
    const bodies = new Map<string, string>();
    for (const part of example.split(/^\[(?=[a-z-]+\]\s*$)/m).slice(1))
      bodies.set(part.slice(0, part.indexOf("]")), part);
    for (const [section, keys] of Object.entries(sections)) {
      const body = bodies.get(section) ?? "";
      for (const [name, spec] of Object.entries(keys)) {
        const line = new RegExp(`^(# )?${name} = `, "m");
        const shown = line.test(body) || (name === "schedule" && example.includes("[[autoscale.schedule]]"));
        assert.ok(shown, `doproxy.toml: [${section}] ${name} is missing`);
        const value = values[section]?.[name];
        if (value !== undefined && !(typeof value === "string" && value.includes("${")))
          assert.deepEqual(value, spec.default, `doproxy.toml: [${section}] ${name} is not the default`);
      }
    }
  });

  it("a value that fails its own check is not reported again by a rule across keys", () => {
    for (const [text, key] of [
      ['[health]\neject-time = "bad"\nmax-eject-time = "1m"', "eject-time"],
      ['[inventory]\nraw-retention = "soon"', "raw-retention"],
    ] as const) {
      assert.throws(
        () => parseConfigText(text, undefined, {}),
        (error: Error) => error.message.split("\n").length === 1 && error.message.includes(`${key} = `),
      );
    }
  });
});
