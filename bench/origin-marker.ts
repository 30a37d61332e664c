/** Starts every synthetic chunk of the origin benchmark, followed by its send time (float64). */
export const MAGIC = Buffer.from('APPLBNCH');
