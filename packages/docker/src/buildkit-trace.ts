/**
 * Decoding of BuildKit's progress trace.
 *
 * With BuildKit (`version: '2'`) the daemon sends `{ id: 'moby.buildkit.trace', aux: <base64> }`
 * events whose payload is a protobuf `moby.buildkit.v1.StatusResponse`:
 *
 *   StatusResponse { repeated Vertex vertexes = 1; repeated VertexStatus statuses = 2; repeated VertexLog logs = 3; }
 *   Vertex         { string digest = 1; repeated string inputs = 2; string name = 3; bool cached = 4;
 *                    Timestamp started = 5; Timestamp completed = 6; string error = 7; }
 *   VertexLog      { string vertex = 1; Timestamp timestamp = 2; int64 stream = 3; bytes msg = 4; }
 *
 * Only the fields needed for log lines and errors are read; everything else is skipped by wire type.
 */

export interface TraceVertex {
  digest: string;
  name: string;
  cached: boolean;
  started: boolean;
  completed: boolean;
  error: string;
}

export interface TraceLog {
  vertex: string;
  /** 1 stdout, 2 stderr (0 when absent). */
  stream: number;
  /** Raw bytes of the output, cut where BuildKit's buffer was: a UTF-8 character may span two messages. */
  msg: Buffer;
}

export interface StatusResponse {
  vertexes: TraceVertex[];
  logs: TraceLog[];
}

type Field = { number: number; wireType: number; value: bigint | Buffer };

function* fields(buffer: Buffer): Generator<Field> {
  let offset = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (offset >= buffer.length) throw new Error('truncated varint');
      const byte = buffer[offset++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (offset < buffer.length) {
    const key = Number(varint());
    const number = key >>> 3;
    const wireType = key & 7;
    switch (wireType) {
      case 0:
        yield { number, wireType, value: varint() };
        break;
      case 1:
        yield { number, wireType, value: buffer.subarray(offset, (offset += 8)) };
        break;
      case 2: {
        const length = Number(varint());
        if (offset + length > buffer.length) throw new Error('truncated field');
        yield { number, wireType, value: buffer.subarray(offset, (offset += length)) };
        break;
      }
      case 5:
        yield { number, wireType, value: buffer.subarray(offset, (offset += 4)) };
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${wireType}`);
    }
  }
}

function decodeVertex(buffer: Buffer): TraceVertex {
  const vertex: TraceVertex = { digest: '', name: '', cached: false, started: false, completed: false, error: '' };
  for (const field of fields(buffer)) {
    if (field.wireType === 2 && Buffer.isBuffer(field.value)) {
      if (field.number === 1) vertex.digest = field.value.toString('utf8');
      else if (field.number === 3) vertex.name = field.value.toString('utf8');
      else if (field.number === 5) vertex.started = true;
      else if (field.number === 6) vertex.completed = true;
      else if (field.number === 7) vertex.error = field.value.toString('utf8');
    } else if (field.wireType === 0 && field.number === 4) {
      vertex.cached = field.value !== 0n;
    }
  }
  return vertex;
}

function decodeLog(buffer: Buffer): TraceLog {
  const log: TraceLog = { vertex: '', stream: 0, msg: Buffer.alloc(0) };
  for (const field of fields(buffer)) {
    if (field.number === 3 && typeof field.value === 'bigint') log.stream = Number(field.value);
    if (field.wireType !== 2 || !Buffer.isBuffer(field.value)) continue;
    if (field.number === 1) log.vertex = field.value.toString('utf8');
    else if (field.number === 4) log.msg = field.value;
  }
  return log;
}

/** Decodes one `moby.buildkit.trace` payload (base64). Throws on malformed input. */
export function decodeStatusResponse(base64: string): StatusResponse {
  const response: StatusResponse = { vertexes: [], logs: [] };
  for (const field of fields(Buffer.from(base64, 'base64'))) {
    if (field.wireType !== 2 || !Buffer.isBuffer(field.value)) continue;
    if (field.number === 1) response.vertexes.push(decodeVertex(field.value));
    else if (field.number === 3) response.logs.push(decodeLog(field.value));
  }
  return response;
}
