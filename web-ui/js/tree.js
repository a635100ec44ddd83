// The catalog tree, built client-side from the flat channel list (GB/T
// 28181-2016 §9.3 / annex J): regions (civil codes of 2–8 digits nest by
// prefix), business groups (type 215), virtual organisations (216) and
// channels. A node's parent is the first of these that is itself in the
// catalog: its ParentID, the other ParentID path entries (nearest first),
// its BusinessGroupID, its region (CivilCode, or for a region the longest
// shorter code); anything else hangs at the top.

const ORDER = { region: 0, business_group: 1, virtual_organization: 2, recorder: 3, platform: 4, other: 5, camera: 6 };

/** Returns the root nodes: {channel, children[]} sorted kind first, then name. */
export function buildTree(channels) {
  const nodes = new Map();
  for (const c of channels) nodes.set(c.id, { channel: c, children: [], parent: null });

  const regionOf = (code, self) => {
    if (!code) return null;
    for (let len = Math.min(code.length, 8); len >= 2; len -= 2) {
      const id = code.slice(0, len);
      if (id !== self && nodes.has(id) && nodes.get(id).channel.kind === 'region') return id;
    }
    return null;
  };

  const createsCycle = (child, parentId) => {
    let p = parentId;
    const seen = new Set();
    while (p && !seen.has(p)) {
      if (p === child) return true;
      seen.add(p);
      p = nodes.get(p)?.parent;
    }
    return false;
  };

  for (const [id, node] of nodes) {
    const c = node.channel;
    const candidates = [c.parent_id, ...[...(c.parent_ids || [])].reverse()];
    if (c.kind !== 'business_group' && c.kind !== 'region') candidates.push(c.business_group_id);
    if (c.kind === 'region') candidates.push(regionOf(id.slice(0, id.length - 2), id));
    else candidates.push(regionOf(c.civil_code, id));
    const parent = candidates.find((p) => p && p !== id && nodes.has(p) && !createsCycle(id, p));
    node.parent = parent || null;
  }

  const roots = [];
  for (const node of nodes.values()) {
    if (node.parent) nodes.get(node.parent).children.push(node);
    else roots.push(node);
  }
  const sort = (list) => {
    list.sort((a, b) => (ORDER[a.channel.kind] ?? 5) - (ORDER[b.channel.kind] ?? 5)
      || (a.channel.name || a.channel.id).localeCompare(b.channel.name || b.channel.id));
    list.forEach((n) => sort(n.children));
    return list;
  };
  return sort(roots);
}

/** The number of cameras under a node (itself included). */
export function cameraCount(node) {
  return (node.channel.kind === 'camera' ? 1 : 0) + node.children.reduce((n, c) => n + cameraCount(c), 0);
}

/**
 * PTZType from the catalog (GB/T 28181-2016 annex A.2.1.4 / J): 1 dome,
 * 2 half-dome, 3 fixed box camera, 4 remote-controlled box camera. Only 3
 * has no head; unknown (absent, 0) is offered the pad too, as many devices
 * leave the field out.
 */
export function hasPtz(channel) {
  const t = Number(channel.ptz_type ?? channel.item?.ptz_type ?? 0);
  return t !== 3;
}
