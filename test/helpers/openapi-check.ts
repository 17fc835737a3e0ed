/**
 * Checks every answer a test server gives against the OpenAPI document it publishes, so the
 * document cannot drift from the code: the harness (test/integration/harness.ts) puts `record`
 * in front of the app and `check` runs when the server closes. For each answer to a documented
 * operation: its status must be documented (exactly, as a range like `4XX`, or `default`), its
 * content type among the documented ones, and a JSON body must validate (ajv, JSON Schema 2020-12,
 * OpenAPI 3.1's dialect) against the documented schema. A JSON error from an undocumented path
 * must still be an `Error`.
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { RequestHandler } from "express";

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv2020) => Ajv2020;

export interface RecordedAnswer {
  method: string;
  /** Express's route template (`/v1/jobs/:id`), or null when no route matched. */
  route: string | null;
  url: string;
  status: number;
  contentType: string | null;
  /** The body, when it was sent with res.json. */
  json?: unknown;
}

export interface AnswerRecorder {
  record: RequestHandler;
  answers: RecordedAnswer[];
}

export function answerRecorder(): AnswerRecorder {
  const answers: RecordedAnswer[] = [];
  const record: RequestHandler = (req, res, next) => {
    let json: unknown;
    let sentJson = false;
    const original = res.json.bind(res);
    res.json = (body: unknown) => {
      sentJson = true;
      json = body;
      return original(body);
    };
    res.once("finish", () => {
      const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : null;
      const ct = res.getHeader("content-type");
      answers.push({
        method: req.method.toLowerCase(),
        route,
        url: req.originalUrl,
        status: res.statusCode,
        contentType: ct === undefined ? null : String(ct).split(";")[0].trim(),
        ...(sentJson ? { json: JSON.parse(JSON.stringify(json)) } : {}),
      });
    });
    next();
  };
  return { record, answers };
}

type Doc = {
  paths: Record<string, Record<string, { responses: Record<string, Response> }>>;
};
type Response = { content?: Record<string, { schema?: unknown }> };

/** Problems with the answers (empty: all agree with the document). */
export function checkAnswers(doc: Record<string, unknown>, answers: RecordedAnswer[]): string[] {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(doc, "openapi");
  const { paths } = doc as Doc;
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const a of answers) {
    const where = `${a.method.toUpperCase()} ${a.url} -> ${a.status}`;
    const template = a.route?.replace(/:(\w+)/g, "{$1}");
    const op = template ? paths[template]?.[a.method] : undefined;
    if (!op) {
      // Not a documented operation (the docs pages, an unknown path): an error must still be an Error.
      if (a.status >= 400 && a.json !== undefined) {
        const validate = ajv.getSchema("openapi#/components/schemas/Error")!;
        if (!validate(a.json)) problems.push(`${where}: not an Error: ${ajv.errorsText(validate.errors)}`);
      }
      continue;
    }
    const responses = op.responses;
    const key = [String(a.status), `${String(a.status)[0]}XX`, "default"].find((k) => k in responses);
    if (!key) {
      problems.push(`${where}: status not documented for ${a.method.toUpperCase()} ${template}`);
      continue;
    }
    const content = responses[key].content;
    if (content && a.contentType && !(a.contentType in content)) {
      problems.push(`${where}: content type ${a.contentType} not documented (${Object.keys(content)})`);
    }
    if (a.json === undefined) continue;
    if (!content?.["application/json"]?.schema) {
      problems.push(`${where}: a JSON body where the document has no JSON schema`);
      continue;
    }
    const pointer = `openapi#/paths/${pointerToken(template!)}/${a.method}/responses/${pointerToken(key)}/content/application~1json/schema`;
    const validate = ajv.getSchema(pointer);
    if (!validate) {
      problems.push(`${where}: no schema at ${pointer}`);
    } else if (!validate(a.json)) {
      const problem = `${where}: ${ajv.errorsText(validate.errors)}`;
      if (!seen.has(problem)) problems.push(`${problem}\n  body: ${JSON.stringify(a.json).slice(0, 400)}`);
      seen.add(problem);
    }
  }
  return problems;
}

/** A JSON Pointer token (RFC 6901), percent-encoded for a URI fragment. */
function pointerToken(token: string): string {
  return encodeURIComponent(token.replace(/~/g, "~0").replace(/\//g, "~1"));
}
