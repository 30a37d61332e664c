/** On every answer of the origin: players on other sites may read it, and see its dates and ranges. */
export const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'Date, Content-Range, Content-Length, ETag, Age',
};
