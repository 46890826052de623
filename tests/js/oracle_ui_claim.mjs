// What the UMA Oracle UI (optimistic-oracle-dapp-v2) shows for an OptimisticOracleV3 claim, computed the way the
// UI computes it (src/helpers/converters.ts assertionToOracleQuery, decodeHexString, isOptimisticGovernor;
// src/helpers/queryParsing.ts getTitleAndDescriptionFromJson), with the same ethers v5 UTF-8 decoder.
//   stdin: a JSON array of claims as 0x-hex strings
//   stdout: a JSON array, one entry per claim: {"title", "description"} when the UI shows a JSON claim's title and
//           description, else {"shown": null, "reason": ...}
import ethers from 'ethers'

function decodeHexString (hex) {
  try {
    return { text: ethers.utils.toUtf8String(hex).replace(/\u0000/g, '') }
  } catch (e) {
    return { text: 'Unable to decode hex string', failed: true }
  }
}

function isOptimisticGovernor (text) {
  return text.includes('rules:') && text.includes('explanation:')
}

// superstruct `type({ title: string(), description: string() })`: an object (extra keys allowed) whose title and
// description are strings.
function isOracleDetails (value) {
  return typeof value === 'object' && value !== null &&
    typeof value.title === 'string' && typeof value.description === 'string'
}

function titleAndDescription (text) {
  try {
    const end = text.lastIndexOf('}')
    const maybeJson = end > 0 ? text.slice(0, end + 1) : text
    const json = JSON.parse(maybeJson)
    return isOracleDetails(json) ? { title: json.title, description: json.description } : undefined
  } catch (e) {
    return undefined
  }
}

function view (hex) {
  const decoded = decodeHexString(hex)
  if (decoded.failed) return { shown: null, reason: 'undecodable' }
  if (isOptimisticGovernor(decoded.text)) return { shown: null, reason: 'osnap' }
  const details = titleAndDescription(decoded.text)
  if (details === undefined) return { shown: null, reason: 'raw text' }
  return details
}

let input = ''
for await (const piece of process.stdin) input += piece
console.log(JSON.stringify(JSON.parse(input).map(view)))
