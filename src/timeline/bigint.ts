// Media times are bigint (ticks since 1970 overflow a double's exact range); Math.max takes numbers only.

export const laterOf = (a: bigint, b: bigint): bigint => (a > b ? a : b);
