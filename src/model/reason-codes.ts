import { API_FAILURE_REASONS } from "../errors.js";

/**
 * Every reason code an inventory event carries (the `code` column), declared once with its
 * meaning. The message of an event is for people; the code is for code, tests and alerting.
 * docs/reason-codes.md is generated from these tables (`npm run docs:errors`); a unit test fails
 * when it is stale.
 */

/** The autoscaler's decisions (autoscale/policy.ts `decide()`), written on `scale.*` events. */
export const DECISION_CODES = {
  "replace-done": "An unhealthy droplet's replacement is active: the unhealthy one is drained.",
  "below-floor": "Fewer droplets than `[autoscale] min` (or the schedule's floor): droplets are ordered.",
  "predicted-floor":
    "The load prediction raised the floor above min: droplets are ordered ahead of the load.",
  "replace-unhealthy": "A droplet stayed unhealthy: a replacement is ordered.",
  "replace-make-room":
    "At max with an unhealthy droplet: it is drained first to make room for its replacement.",
  "replacements-failing":
    "Replacements kept failing (`replacement-attempts`): replacing is held until `doproxy autoscale resume`.",
  "identity-conflict":
    "Droplets carrying this pool's ownership tag exist that this inventory never created: destroys are held.",
  "load-back": "Load came back while a droplet drained: it is put back in rotation.",
  "breach-window": "Above the scale-up thresholds, but not yet for the whole breach window.",
  booting: "Above the scale-up thresholds, but droplets are still booting.",
  "at-max": "Above the scale-up thresholds, but already at `[autoscale] max`.",
  "up-cooldown": "Above the scale-up thresholds, but within the scale-up cooldown.",
  "scale-up": "Above the scale-up thresholds for the breach window: droplets are ordered.",
  "calm-window": "Below the scale-down thresholds, but not yet for the whole calm window.",
  "change-in-progress": "Below the scale-down thresholds, but a change (booting, draining) is in progress.",
  "at-floor": "Below the scale-down thresholds, but already at the floor.",
  "down-cooldown": "Below the scale-down thresholds, but within the scale-down cooldown.",
  "scale-down": "Below the scale-down thresholds for the calm window: a droplet is drained.",
  "no-victim": "Below the scale-down thresholds, but no active droplet may be removed.",
  steady: "Within the thresholds: nothing to do.",
  backoff: "A create failed recently: the autoscaler waits out its backoff before ordering again.",
  "droplet-limit": "The account's droplet limit refused creates: held until it is raised or droplets go.",
  budget: "`[autoscale] max-hourly-cost` held or cut a scale-up.",
} as const;

/** Why a backend row was closed (`backends.close_reason`), written on its `backend.removed` event. */
export const CLOSE_CODES = {
  destroyed: "The droplet was destroyed by this pool (removed by hand, scaled down or replaced).",
  released: "Removed with `--keep-droplet`: the droplet lives on outside the pool.",
  gone: "The droplet no longer exists in DigitalOcean (destroyed outside doproxy).",
  "never-created": "The create was not sent, or lookups confirmed it made no droplet.",
  "create-refused": "The API refused the create (limit, size, image, region): no droplet.",
  "boot-timeout": "The droplet did not become active within `[digitalocean] boot-timeout`: destroyed.",
  removed: "A backend that is not a droplet was removed by hand.",
} as const;

/** A backend's other transitions and changes (`backend.*` events). */
export const BACKEND_CODES = {
  "added-by-hand":
    "A server that is not a droplet was registered (`droplets add --address`): it joins after health checks.",
  "create-ordered":
    "A droplet's row was written before its create call (by `droplets add` or the autoscaler).",
  adopted: "An existing droplet was adopted (`droplets add --id`, `droplets sync --apply`, `pool recover`).",
  booted: "A droplet got its address: it joins after health checks.",
  "health-passed": "Passed `healthy-after` health checks in a row: in rotation.",
  "health-failed": "Failed `unhealthy-after` health checks in a row: out of rotation.",
  "join-timeout": "Did not pass health checks within `join-timeout`: unhealthy.",
  "drain-by-hand": "`droplets remove` started draining it.",
  "drain-scale-down": "The autoscaler started draining it (scale-down or replacement).",
  "weight-changed": "Its weight was changed (`droplets set --weight` or adopt).",
  "outlier-5xx": "Ejected by outlier detection: `eject-after` 5xx answers in a row.",
  "outlier-connect": "Ejected by outlier detection: `eject-after` connect failures in a row.",
  "outlier-trial-failed": "Ejected again: its trial request after an ejection failed.",
  "outlier-returned": "Back in rotation: its trial request after an ejection succeeded.",
  "max-ejected":
    "Met the ejection rule but stays in rotation (`max-ejected-percent`, never the last backend).",
} as const;

/** Pool, leadership, reserved-IP and operator events that are not one backend's. */
export const POOL_CODES = {
  "deleted-again": "A droplet this pool deleted was still listed after the delete lag: it was deleted again.",
  "replacements-resumed":
    "Replacing unhealthy droplets resumed (an operator asked, or a replacement came up).",
  "resume-requested":
    "An operator ran `doproxy autoscale resume`; the leader resumes at its next evaluation.",
  "lease-lost": "The leader lease was lost before acting: another doproxy serve scales the pool now.",
  error: "A scaling action failed for a reason outside the API's (the message says which).",
  unassigned: "The reserved IP pointed nowhere: it was assigned to this proxy's droplet.",
  failover:
    "The reserved IP pointed at another droplet (a proxy that stopped leading): it was moved to this one.",
  missing: "The configured reserved IP does not exist in this account.",
  api: "An API call of the reserved-IP keeper failed.",
} as const;

/** Automatic HTTPS (`certificate.*` events): each order, renewal and failure of an ACME certificate. */
export const CERTIFICATE_CODES = {
  "order-placed":
    "The leader placed an ACME order for the certificate's domains (first issuance or renewal).",
  issued: "The CA issued the certificate: it is stored in the inventory and every proxy loads it.",
  "renew-due": "Two thirds of the certificate's lifetime (with jitter) have passed: it is renewed.",
  "renew-requested": "An operator ran `doproxy certs renew`: the leader renews at its next look.",
  "acme-rate-limited":
    "The CA refused the order for its rate limits (HTTP 429, rateLimited): retried after a longer backoff.",
  "challenge-failed":
    "The CA could not validate a challenge (the answer did not reach it, or was wrong): retried with backoff.",
  "dns-mismatch": "The CA could not resolve a domain, or it resolved elsewhere: check its DNS records.",
  "acme-unreachable": "The ACME directory did not answer (network, TLS, 5xx): retried with backoff.",
  "acme-account":
    "The CA refused the account (terms, external account binding, contact): retried with backoff.",
  "acme-error": "The order failed for another reason (the message says which): retried with backoff.",
  "self-signed":
    "No certificate from the CA yet: the TLS listener answers with a short-lived self-signed one meanwhile.",
  loaded: "A proxy loaded a new certificate from the inventory, without a restart.",
} as const;

/** Every reason code, by table; the union type below is the one every event's code is checked against. */
export const REASON_CODE_TABLES = {
  "Autoscaler decisions (`scale.*`)": DECISION_CODES,
  "Backend closed (`backend.removed`)": CLOSE_CODES,
  "Backend transitions and changes (`backend.*`)": BACKEND_CODES,
  "API failures (`scale.error`, `reserved-ip.error`)": API_FAILURE_REASONS,
  "Pool, leadership, reserved IP and operator": POOL_CODES,
  "Automatic HTTPS (`certificate.*`)": CERTIFICATE_CODES,
} as const;

export type DecisionCode = keyof typeof DECISION_CODES;
export type CloseCode = keyof typeof CLOSE_CODES;
export type BackendCode = keyof typeof BACKEND_CODES;
export type PoolCode = keyof typeof POOL_CODES;
export type CertificateCode = keyof typeof CERTIFICATE_CODES;
export type ReasonCode =
  | DecisionCode
  | CloseCode
  | BackendCode
  | keyof typeof API_FAILURE_REASONS
  | PoolCode
  | CertificateCode;
