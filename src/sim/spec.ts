import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { parse as parseYaml } from "yaml";

/** The copy of DigitalOcean's OpenAPI description that ships with doproxy (spec/do-api/). */
export const SPEC_FILE = fileURLToPath(
  new URL("../../spec/do-api/do-droplets-openapi.yaml", import.meta.url),
);

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

type Json = Record<string, unknown>;

/** JSON-pointer escaping for a path segment ("/v2/droplets" -> "~1v2~1droplets"). */
function pointer(...segments: string[]): string {
  return segments.map((s) => s.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
}

/**
 * Validates request bodies and responses against DigitalOcean's own OpenAPI document with Ajv.
 * The whole document is registered as one schema, and each operation's body or response schema
 * is compiled by JSON pointer into it, so the spec's internal $refs resolve as written.
 */
export class ApiSpec {
  private readonly ajv: Ajv;
  private readonly doc: Json;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(file = SPEC_FILE) {
    this.doc = parseYaml(readFileSync(file, "utf8")) as Json;
    // OpenAPI 3.0 schemas carry keywords JSON Schema does not know (example, x-*): not strict.
    // unicodeRegExp: false — DigitalOcean's patterns escape characters (`\:`) that a /u RegExp refuses.
    this.ajv = new Ajv({
      strict: false,
      allErrors: true,
      validateSchema: false,
      // Off: Ajv's discriminator refuses `mapping`, which the reserved IP actions use; the
      // anyOf/oneOf beside each discriminator validates the same bodies without it.
      discriminator: false,
      unicodeRegExp: false,
    });
    addFormats(this.ajv);
    this.ajv.addSchema(this.doc, "do-api");
  }

  /** Errors (empty when valid) of a request body for the operation at `path` (a spec path template). */
  validateRequestBody(method: string, path: string, body: unknown): string[] {
    const op = this.operation(method, path);
    if (!op?.requestBody) return [];
    return this.run(
      `do-api#/${pointer("paths", path, method.toLowerCase(), "requestBody", "content", "application/json", "schema")}`,
      body,
    );
  }

  /** Errors (empty when valid) of a response body for `status` of the operation at `path`. */
  validateResponse(method: string, path: string, status: number, body: unknown): string[] {
    const op = this.operation(method, path);
    if (!op) return [`no operation ${method} ${path} in the spec`];
    const responses = op.responses as Record<string, Json>;
    const key = String(status) in responses ? String(status) : "default";
    const response = responses[key];
    if (!response) return [`status ${status} is not a documented response of ${method} ${path}`];
    const ref = response.$ref as string | undefined;
    const base = ref ? ref.slice(2) : pointer("paths", path, method.toLowerCase(), "responses", key);
    const resolved = ref ? this.at(ref) : response;
    const content = (resolved?.content as Json | undefined)?.["application/json"] as Json | undefined;
    if (!content?.schema)
      return body === undefined || body === "" ? [] : [`${method} ${path} ${status} has no body in the spec`];
    return this.run(`do-api#/${base}/${pointer("content", "application/json", "schema")}`, body);
  }

  /** Query parameters the operation accepts, with their schemas. */
  queryParameters(method: string, path: string): Map<string, Json> {
    const op = this.operation(method, path);
    const out = new Map<string, Json>();
    for (const param of (op?.parameters as Json[] | undefined) ?? []) {
      const resolved = (param.$ref ? this.at(param.$ref as string) : param) as Json;
      if (resolved.in === "query") out.set(resolved.name as string, resolved.schema as Json);
    }
    return out;
  }

  private operation(method: string, path: string): Json | undefined {
    const paths = this.doc.paths as Record<string, Json>;
    return paths[path]?.[method.toLowerCase()] as Json | undefined;
  }

  private at(ref: string): Json | undefined {
    let node: unknown = this.doc;
    for (const segment of ref.replace(/^#\//, "").split("/")) {
      node = (node as Json | undefined)?.[segment.replace(/~1/g, "/").replace(/~0/g, "~")];
    }
    return node as Json | undefined;
  }

  private run(ref: string, data: unknown): string[] {
    let validate = this.compiled.get(ref);
    if (!validate) {
      validate = this.ajv.compile({ $ref: ref });
      this.compiled.set(ref, validate);
    }
    if (validate(data)) return [];
    return (validate.errors ?? []).map((e) => `${e.instancePath || "(body)"} ${e.message}`);
  }
}
