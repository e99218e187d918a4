// A BlurHash decoder (the format media-service writes for each photo), drawn to a data URL.

const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
const SIZE = 32; // pixels each way: blurred enough to scale up to any photo
const drawn = new Map();

function base83(text) {
  let value = 0;
  for (const char of text) value = value * 83 + DIGITS.indexOf(char);
  return value;
}

function toLinear(channel) {
  const v = channel / 255;
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
}

function toSrgb(value) {
  const v = Math.max(0, Math.min(1, value));
  return Math.round(v <= 0.0031308 ? v * 12.92 * 255 : (1.055 * v ** (1 / 2.4) - 0.055) * 255);
}

function colours(hash, count, maximum) {
  const dc = base83(hash.slice(2, 6));
  const found = [[dc >> 16, (dc >> 8) & 255, dc & 255].map(toLinear)];
  for (let i = 1; i < count; i++) {
    const ac = base83(hash.slice(4 + i * 2, 6 + i * 2));
    const quantised = [Math.floor(ac / 361), Math.floor(ac / 19) % 19, ac % 19];
    found.push(quantised.map((q) => Math.sign(q - 9) * ((q - 9) / 9) ** 2 * maximum));
  }
  return found;
}

/** The RGBA pixels of `hash` at SIZE x SIZE, or null when it is not a valid BlurHash. */
export function decode(hash) {
  if (!hash || hash.length < 6) return null;
  const sizeFlag = base83(hash[0]);
  const nx = (sizeFlag % 9) + 1;
  const ny = Math.floor(sizeFlag / 9) + 1;
  if (hash.length !== 4 + 2 * nx * ny) return null;
  const basis = colours(hash, nx * ny, (base83(hash[1]) + 1) / 166);
  const pixels = new Uint8ClampedArray(SIZE * SIZE * 4);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const rgb = [0, 0, 0];
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const weight = Math.cos((Math.PI * x * i) / SIZE) * Math.cos((Math.PI * y * j) / SIZE);
          const colour = basis[i + j * nx];
          for (let c = 0; c < 3; c++) rgb[c] += colour[c] * weight;
        }
      }
      const at = 4 * (x + y * SIZE);
      pixels.set([...rgb.map(toSrgb), 255], at);
    }
  }
  return pixels;
}

/** A data URL of the blurred picture for `hash` (cached), or null. */
export function placeholder(hash) {
  if (drawn.has(hash)) return drawn.get(hash);
  const pixels = decode(hash);
  let url = null;
  if (pixels) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = SIZE;
    canvas.getContext("2d").putImageData(new ImageData(pixels, SIZE, SIZE), 0, 0);
    url = canvas.toDataURL();
  }
  drawn.set(hash, url);
  return url;
}
