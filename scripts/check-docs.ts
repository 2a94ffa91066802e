/**
 * The documentation checker (`npm run check:docs`, and test/e2e/docs.test.ts).
 *
 * 1. Every relative link of README.md and docs/*.md resolves: the file exists and, for a link to a
 *    heading (`page.md#anchor`), the heading does.
 * 2. Every `doproxy` command named in a code block (`doproxy droplets add --count 2`) exists, with
 *    every `--flag` written next to it, as `doproxy … --help` lists them; every `npm run X` names
 *    a script of package.json; every `sh` block marked not-run still parses (`bash -n`).
 * 3. The `sh` blocks of README.md and docs/getting-started.md run, in order, one shell per page,
 *    in a scratch folder, against this clone's build (dist/; `npx doproxy` and `doproxy` are shims
 *    for it). Each page runs in a network namespace of its own (`unshare`), so the blocks run
 *    verbatim and their ports (4010, 8080, 9090, the droplets' 127.0.1.N:8080) meet no other
 *    process; where namespaces are not allowed, the loopback ports the blocks name are replaced by
 *    free ones instead. A block that cannot run here (the real DigitalOcean API, systemctl, apt,
 *    the minutes-long demo) is marked in the markdown, visibly to anyone editing it, by the line
 *    `<!-- not-run: reason -->` right before it; it is only checked as in 2. A failing block is
 *    reported with its file, line, text and output; every process a run started is stopped.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freePort } from "./free-port.js";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The pages whose `sh` blocks are run, in this order. */
export const RUN_FILES = ["README.md", "docs/getting-started.md"];

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  text: string;
  /** The reason of a `<!-- not-run: reason -->` marker right before the block. */
  notRun?: string;
}

const SHELL_LANGS = new Set(["sh", "bash", "shell", "console", ""]);

/** The fenced code blocks of one markdown page, with their not-run markers. */
export function extractBlocks(file: string, markdown: string): DocBlock[] {
  const lines = markdown.split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i] as string);
    if (!open) continue;
    const fence = open[2] as string;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i] as string).trimStart().startsWith(fence); i++)
      body.push(lines[i] as string);
    let j = start - 1;
    while (j >= 0 && (lines[j] as string).trim() === "") j--;
    const marker = j >= 0 ? /^<!--\s*not-run:\s*(.*?)\s*-->$/.exec((lines[j] as string).trim()) : null;
    blocks.push({
      file,
      line: start + 1,
      lang: (open[3] as string).toLowerCase(),
      text: body.join("\n"),
      ...(marker ? { notRun: marker[1] as string } : {}),
    });
  }
  return blocks;
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
export function anchorOf(heading: string): string {
  return heading
    .replace(/^#+\s*/, "")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, "")
    .replace(/ /g, "-");
}

function headingsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(`{3,}|~{3,})/.test(line)) fenced = !fenced;
    else if (!fenced && /^#{1,6} /.test(line)) anchors.add(anchorOf(line));
  }
  return anchors;
}

/** The markdown pages whose links are checked: README.md and docs/*.md. */
export function docPages(root = ROOT): string[] {
  return [
    "README.md",
    ...readdirSync(path.join(root, "docs"))
      .filter((f) => f.endsWith(".md"))
      .sort()
      .map((f) => `docs/${f}`),
  ];
}

/** Every relative link that does not resolve, as "file:line: link (why)". */
export function checkLinks(root = ROOT, files = docPages(root)): string[] {
  const problems: string[] = [];
  const anchors = new Map<string, Set<string>>();
  const anchorsOf = (file: string) => {
    let set = anchors.get(file);
    if (!set) {
      set = headingsOf(readFileSync(path.join(root, file), "utf8"));
      anchors.set(file, set);
    }
    return set;
  };
  for (const file of files) {
    const lines = readFileSync(path.join(root, file), "utf8").split("\n");
    let fenced = false;
    lines.forEach((line, index) => {
      if (/^\s*(`{3,}|~{3,})/.test(line)) fenced = !fenced;
      if (fenced) return;
      for (const match of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = match[1] as string;
        if (/^[a-z][a-z+.-]*:/i.test(link)) continue;
        const [target = "", fragment] = link.split("#", 2);
        const resolved =
          target === "" ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), target));
        const where = `${file}:${index + 1}: ${link}`;
        if (!existsSync(path.join(root, resolved))) problems.push(`${where} (no such file ${resolved})`);
        else if (fragment && resolved.endsWith(".md") && !anchorsOf(resolved).has(fragment))
          problems.push(`${where} (no heading #${fragment} in ${resolved})`);
      }
    });
  }
  return problems;
}

export interface CommandMention {
  where: string;
  words: string[];
  flags: string[];
}

/** `doproxy` commands named in a shell-like block: the sub-command words and the flags written with them. */
export function commandMentions(block: DocBlock): CommandMention[] {
  const mentions: CommandMention[] = [];
  block.text.split("\n").forEach((whole, index) => {
    const line = whole.split(/\s#/)[0] as string;
    for (const match of line.matchAll(/(?:^|[\s;&|(`$])doproxy((?: +[^\s#;&|)`]+)*)/g)) {
      // The command runs to a comment, a separator or a wide gap (a synopsis' description column).
      const command = (match[1] as string).split(/ {2,}| #/)[0] as string;
      const tokens = command.trim().split(/\s+/).filter(Boolean);
      const words: string[] = [];
      for (const token of tokens) {
        if (!/^[a-z][a-z-]*$/.test(token) || words.length === 2) break;
        words.push(token);
      }
      if (words.length === 0) continue;
      const flags = tokens.flatMap((t) => /^(--[a-z][a-z0-9-]*)/.exec(t)?.[1] ?? []);
      mentions.push({ where: `${block.file}:${block.line + 1 + index}`, words, flags });
    }
  });
  return mentions;
}

export interface CommandNode {
  name: string;
  flags: string[];
  commands: CommandNode[];
}

/**
 * doproxy's command tree with every command's long flags, read from the built CLI in one process:
 * a preload replaces commander's parseAsync by a dump of the program it was called on.
 */
export function commandTree(cli: string): CommandNode {
  const scratch = mkdtempSync(path.join(tmpdir(), "doproxy-docs-tree-"));
  try {
    const preload = path.join(scratch, "dump.mjs");
    writeFileSync(
      preload,
      `import { Command } from ${JSON.stringify(import.meta.resolve("commander"))};\n` +
        "Command.prototype.parseAsync = async function () {\n" +
        "  const walk = (c) => ({ name: c.name(), flags: [...c.options.map((o) => o.long).filter(Boolean), '--help'], commands: c.commands.map(walk) });\n" +
        "  process.stdout.write(JSON.stringify(walk(this)));\n" +
        "  process.exit(0);\n" +
        "};\n",
    );
    const result = spawnSync(process.execPath, ["--import", pathToFileURL(preload).href, cli], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, DOPROXY_CONFIG: "" },
    });
    if (result.status !== 0) throw new Error(`reading doproxy's commands failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as CommandNode;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Whether one mention names a command that exists, with flags it has; the problem otherwise. */
export function checkMention(tree: CommandNode, mention: CommandMention): string | null {
  const [first, second] = mention.words as [string, string | undefined];
  const top = tree.commands.find((c) => c.name === first);
  if (!top) return `${mention.where}: doproxy ${first}: no such command`;
  let leaf = top;
  if (top.commands.length > 0) {
    const sub = top.commands.find((c) => c.name === second);
    if (!sub)
      return `${mention.where}: doproxy ${first} ${second ?? ""}: not one of ${top.commands.map((c) => c.name).join(", ")}`;
    leaf = sub;
  }
  const unknown = mention.flags.filter((f) => !leaf.flags.includes(f));
  const name = leaf === top ? first : `${first} ${second}`;
  return unknown.length > 0 ? `${mention.where}: doproxy ${name} has no ${unknown.join(", ")}` : null;
}

/** Problems with the commands named in code blocks (any page), npm scripts, and not-run blocks' syntax. */
export function checkCommandNames(blocks: DocBlock[], cli: string, root = ROOT): string[] {
  const problems: string[] = [];
  const tree = commandTree(cli);
  const scripts = Object.keys(
    (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> })
      .scripts,
  );
  for (const block of blocks) {
    if (!SHELL_LANGS.has(block.lang)) continue;
    for (const mention of commandMentions(block)) {
      const problem = checkMention(tree, mention);
      if (problem) problems.push(problem);
    }
    block.text.split("\n").forEach((line, index) => {
      for (const m of line.matchAll(/\bnpm run ([\w:-]+)/g))
        if (!scripts.includes(m[1] as string))
          problems.push(
            `${block.file}:${block.line + 1 + index}: npm run ${m[1]}: no such script in package.json`,
          );
    });
    if (block.lang !== "" && block.lang !== "console") {
      const syntax = spawnSync("bash", ["-n"], { input: block.text, encoding: "utf8" });
      if (syntax.status !== 0)
        problems.push(`${block.file}:${block.line}: does not parse: ${syntax.stderr.trim()}`);
    }
  }
  return problems;
}

/** The blocks a run executes: `sh`/`bash`/`shell` blocks without a not-run marker. */
export function runnable(blocks: DocBlock[]): DocBlock[] {
  return blocks.filter((b) => ["sh", "bash", "shell"].includes(b.lang) && b.notRun === undefined);
}

/** Replaces every loopback port written in the blocks by a free one (the same one everywhere). */
export async function portMap(blocks: DocBlock[]): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const block of blocks)
    for (const m of block.text.matchAll(/(?:127\.0\.0\.1|localhost):(\d{2,5})\b/g))
      if (!map.has(m[1] as string)) map.set(m[1] as string, String(await freePort()));
  return map;
}

export function rewritePorts(text: string, ports: Map<string, string>): string {
  return text.replace(/(127\.0\.0\.1|localhost):(\d{2,5})\b/g, (all, host: string, port: string) =>
    ports.has(port) ? `${host}:${ports.get(port)}` : all,
  );
}

export interface RunFailure {
  block: DocBlock;
  /** The text that ran (ports replaced). */
  ran: string;
  exitCode: number | null;
  timedOut: boolean;
  output: string;
}

/**
 * Runs the runnable blocks of one page in one bash, in order, in a scratch folder: `set -e`, so
 * the first failing command stops it. Returns the failing block, or null when all ran. Every
 * process the blocks started (the `&` daemons) is stopped before it returns.
 */
export async function runPage(
  blocks: DocBlock[],
  options: { cli: string; timeoutMs: number },
): Promise<RunFailure | null> {
  if (blocks.length === 0) return null;
  const scratch = mkdtempSync(path.join(tmpdir(), "doproxy-docs-"));
  try {
    const bin = path.join(scratch, ".bin");
    const work = path.join(scratch, "work");
    mkdirSync(bin);
    mkdirSync(work);
    const realNpx = spawnSync("bash", ["-c", "command -v npx"], { encoding: "utf8" }).stdout.trim() || "npx";
    const shim = (name: string, body: string) => {
      writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\n${body}\n`);
      chmodSync(path.join(bin, name), 0o755);
    };
    shim("doproxy", `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(options.cli)} "$@"`);
    shim(
      "npx",
      `if [ "$1" = doproxy ]; then shift; exec doproxy "$@"; fi\nexec ${JSON.stringify(realNpx)} "$@"`,
    );
    // In a network namespace of its own the blocks run verbatim: their ports meet no other process.
    // Without one (no unprivileged user namespaces), the loopback ports they name are replaced.
    const isolated = canIsolateNetwork();
    const ports = isolated ? new Map<string, string>() : await portMap(blocks);
    const ran = blocks.map((b) => rewritePorts(b.text, ports));
    const script = [
      "set -eo pipefail",
      "__doproxy_block=0",
      `trap 'echo "@@docs-exit $__doproxy_block $?"' EXIT`,
      ...ran.flatMap((text, i) => [
        `__doproxy_block=${i + 1}`,
        `echo "@@docs-block ${i + 1} $(date +%s.%N)"`,
        text,
      ]),
      "__doproxy_block=done",
    ].join("\n");
    writeFileSync(path.join(scratch, "run.sh"), `${script}\n`);
    const run = path.join(scratch, "run.sh");
    const [command, args] = isolated
      ? [
          "unshare",
          [
            "--user",
            "--map-root-user",
            "--net",
            "bash",
            "-c",
            `ip link set lo up && exec bash ${JSON.stringify(run)}`,
          ],
        ]
      : ["bash", [run]];
    const child = spawn(command as string, args as string[], {
      cwd: work,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, DOPROXY_CONFIG: "", NO_COLOR: "1" },
    });
    let output = "";
    child.stdout.on("data", (c) => {
      output += c;
    });
    child.stderr.on("data", (c) => {
      output += c;
    });
    let timedOut = false;
    const exitCode = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        timedOut = true;
        resolve(null);
      }, options.timeoutMs);
      child.on("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    await stopGroup(child.pid as number);
    if (process.env.DOPROXY_DOCS_TRACE) console.error(output); // every block's whole output
    const exit = /@@docs-exit (\S+) (\d+)/.exec(output);
    if (!timedOut && exitCode === 0 && exit?.[1] === "done") return null;
    const started = [...output.matchAll(/@@docs-block (\d+)/g)];
    const index = Number(exit && exit[1] !== "done" ? exit[1] : (started.at(-1)?.[1] ?? 1)) - 1;
    const from = output.lastIndexOf(`@@docs-block ${index + 1} `);
    return {
      block: blocks[index] as DocBlock,
      ran: ran[index] as string,
      exitCode: exit ? Number(exit[2]) : exitCode,
      timedOut,
      output: (from >= 0 ? output.slice(from) : output).split("\n").slice(-80).join("\n"),
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

let isolation: boolean | undefined;
/** Whether `unshare` can give a run its own network namespace with a loopback interface. */
export function canIsolateNetwork(): boolean {
  isolation ??=
    spawnSync("unshare", ["--user", "--map-root-user", "--net", "sh", "-c", "ip link set lo up"], {
      timeout: 10_000,
    }).status === 0;
  return isolation;
}

/** SIGTERM to a process group (the shell and its `&` daemons), then SIGKILL if it lingers. */
async function stopGroup(pgid: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(-pgid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive()) process.kill(-pgid, "SIGKILL");
}

export function formatFailure(f: RunFailure): string {
  const why = f.timedOut ? "did not finish in time" : `failed (exit ${f.exitCode})`;
  return `${f.block.file}:${f.block.line}: this block ${why}:\n${f.ran}\n--- its output ---\n${f.output}`;
}

/** Everything: links, command names, then the runs. Returns the problems (empty when all is well). */
export async function checkDocs(
  options: { root?: string; cli?: string; run?: boolean } = {},
): Promise<string[]> {
  const root = options.root ?? ROOT;
  const cli = options.cli ?? path.join(root, "dist/cli/main.js");
  if (!existsSync(cli)) return [`${cli} is missing: run npm run build first`];
  const pages = docPages(root);
  const blocks = pages.flatMap((f) => extractBlocks(f, readFileSync(path.join(root, f), "utf8")));
  const problems = [...checkLinks(root, pages), ...checkCommandNames(blocks, cli, root)];
  if (options.run !== false) {
    const run = (file: string) =>
      runPage(runnable(blocks.filter((b) => b.file === file)), { cli, timeoutMs: 45_000 });
    // Pages in namespaces of their own run at once; sharing the machine's ports, one after another.
    const failures = canIsolateNetwork()
      ? await Promise.all(RUN_FILES.map(run))
      : await RUN_FILES.reduce<Promise<Array<RunFailure | null>>>(
          async (done, file) => [...(await done), await run(file)],
          Promise.resolve([]),
        );
    for (const failure of failures) if (failure) problems.push(formatFailure(failure));
  }
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const started = Date.now();
  void checkDocs({ run: !process.argv.includes("--no-run") }).then((problems) => {
    for (const p of problems) console.error(`${p}\n`);
    console.log(
      problems.length === 0
        ? `docs: links, commands and runnable blocks of ${RUN_FILES.join(" and ")} check out (${((Date.now() - started) / 1000).toFixed(1)} s)`
        : `docs: ${problems.length} problem(s)`,
    );
    process.exitCode = problems.length === 0 ? 0 : 1;
  });
}
