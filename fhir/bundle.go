package fhir

import "encoding/json"

// Bundle types and link relations Vigil emits.
const (
	BundleSearchset           = "searchset"
	BundleBatchResponse       = "batch-response"
	BundleTransactionResponse = "transaction-response"
)

// BundleOut is a Bundle as Vigil emits it: a searchset, or the response to
// a batch or transaction.
type BundleOut struct {
	ResourceType string     `json:"resourceType"`
	Type         string     `json:"type"`
	Timestamp    string     `json:"timestamp,omitempty"`
	Total        *int       `json:"total,omitempty"`
	Link         []Link     `json:"link,omitempty"`
	Entry        []EntryOut `json:"entry,omitempty"`
}

// Link is a Bundle link, e.g. self or next.
type Link struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// EntryOut is one Bundle entry: a resource found by a search (Search set),
// or the outcome of one batch request (Response set).
type EntryOut struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *EntrySearch    `json:"search,omitempty"`
	Response *EntryResponse  `json:"response,omitempty"`
}

// EntrySearch says why an entry is in a searchset.
type EntrySearch struct {
	Mode string `json:"mode"` // match | include | outcome
}

// EntryResponse is the outcome of one request of a batch or transaction.
type EntryResponse struct {
	Status   string          `json:"status"`
	Location string          `json:"location,omitempty"`
	Outcome  json.RawMessage `json:"outcome,omitempty"`
}

// Searchset starts a searchset Bundle with its self link (and next link,
// when next is not empty).
func Searchset(timestamp, self, next string) *BundleOut {
	b := &BundleOut{ResourceType: "Bundle", Type: BundleSearchset, Timestamp: timestamp, Link: []Link{{Relation: "self", URL: self}}}
	if next != "" {
		b.Link = append(b.Link, Link{Relation: "next", URL: next})
	}
	return b
}

// AddMatch appends a resource found by the search; fullURL is its absolute
// URL. An unencodable resource (never one of this package's) is skipped.
func (b *BundleOut) AddMatch(fullURL string, resource any) {
	raw, err := json.Marshal(resource)
	if err != nil {
		return
	}
	b.Entry = append(b.Entry, EntryOut{FullURL: fullURL, Resource: raw, Search: &EntrySearch{Mode: "match"}})
}
