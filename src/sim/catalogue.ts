/** A small, realistic catalogue for the simulator: unknown slugs get the API's 422. */
export const REGIONS = [
  { slug: "nyc1", name: "New York 1" },
  { slug: "nyc3", name: "New York 3" },
  { slug: "sfo3", name: "San Francisco 3" },
  { slug: "ams3", name: "Amsterdam 3" },
  { slug: "fra1", name: "Frankfurt 1" },
  { slug: "lon1", name: "London 1" },
  { slug: "sgp1", name: "Singapore 1" },
  { slug: "tor1", name: "Toronto 1" },
];

export const SIZES = [
  {
    slug: "s-1vcpu-512mb-10gb",
    memory: 512,
    vcpus: 1,
    disk: 10,
    transfer: 0.5,
    price_monthly: 4,
    description: "Basic",
  },
  {
    slug: "s-1vcpu-1gb",
    memory: 1024,
    vcpus: 1,
    disk: 25,
    transfer: 1,
    price_monthly: 6,
    description: "Basic",
  },
  {
    slug: "s-1vcpu-2gb",
    memory: 2048,
    vcpus: 1,
    disk: 50,
    transfer: 2,
    price_monthly: 12,
    description: "Basic",
  },
  {
    slug: "s-2vcpu-2gb",
    memory: 2048,
    vcpus: 2,
    disk: 60,
    transfer: 3,
    price_monthly: 18,
    description: "Basic",
  },
  {
    slug: "s-2vcpu-4gb",
    memory: 4096,
    vcpus: 2,
    disk: 80,
    transfer: 4,
    price_monthly: 24,
    description: "Basic",
  },
  {
    slug: "s-4vcpu-8gb",
    memory: 8192,
    vcpus: 4,
    disk: 160,
    transfer: 5,
    price_monthly: 48,
    description: "Basic",
  },
];

export const IMAGES = [
  { id: 170_000_001, slug: "ubuntu-24-04-x64", name: "24.04 (LTS) x64", distribution: "Ubuntu" },
  { id: 170_000_002, slug: "ubuntu-22-04-x64", name: "22.04 (LTS) x64", distribution: "Ubuntu" },
  { id: 170_000_003, slug: "debian-12-x64", name: "12 x64", distribution: "Debian" },
  { id: 170_000_004, slug: "fedora-40-x64", name: "40 x64", distribution: "Fedora" },
];

export function regionJson(slug: string) {
  const region = REGIONS.find((r) => r.slug === slug) ?? { slug, name: slug };
  return {
    name: region.name,
    slug: region.slug,
    features: ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
    available: true,
    sizes: SIZES.map((s) => s.slug),
  };
}

export function sizeJson(slug: string) {
  const size = SIZES.find((s) => s.slug === slug) ?? (SIZES[1] as (typeof SIZES)[number]);
  return {
    slug: size.slug,
    memory: size.memory,
    vcpus: size.vcpus,
    disk: size.disk,
    transfer: size.transfer,
    price_monthly: size.price_monthly,
    price_hourly: Math.round((size.price_monthly / 730) * 100_000) / 100_000,
    regions: REGIONS.map((r) => r.slug),
    available: true,
    description: size.description,
  };
}

export function imageFor(idOrSlug: string | number) {
  return IMAGES.find((i) => i.slug === idOrSlug || i.id === Number(idOrSlug));
}

export function imageJson(image: (typeof IMAGES)[number], created: string) {
  return {
    id: image.id,
    name: image.name,
    type: "base",
    distribution: image.distribution,
    slug: image.slug,
    public: true,
    regions: REGIONS.map((r) => r.slug),
    created_at: created,
    min_disk_size: 7,
    size_gigabytes: 2.36,
    description: `${image.distribution} ${image.name}`,
    tags: [],
    status: "available",
  };
}
