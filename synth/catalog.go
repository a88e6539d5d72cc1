package synth

// commodity is one kind of goods in the synthetic world. Prices and masses are
// of a plausible order for a Central American import market; they are not
// official figures.
type commodity struct {
	hs       string
	desc     string
	duty     float64   // ad valorem rate
	specific float64   // specific duty per supplementary unit, USD
	perKg    float64   // median customs value per kg, USD
	sigma    float64   // spread of ln(value per kg) between honest consignments
	unit     string    // supplementary unit
	kgUnit   float64   // gross kg per supplementary unit
	netRatio float64   // net / gross
	mass     float64   // median gross mass of one item, kg
	origins  []string  // usual origins, most common first
	oweights []float64 // their weights
	modes    []string  // usual transport modes
	popular  float64   // how many importers trade it (relative)
	// lowDuty is the index of the heading fraudsters declare instead
	// (misclassification), or -1.
	lowDuty int
	// tradeDefence: anti-dumping duty on the main origin (CN), evaded by
	// declaring another origin.
	tradeDefence float64
	excise       bool // high specific duties: a target for understated quantity
}

var sea, air, road = []string{"sea"}, []string{"air"}, []string{"road"}

var catalog = []commodity{
	{hs: "8517130000", desc: "smartphones", perKg: 450, sigma: 0.35, unit: "PCE", kgUnit: 0.35, netRatio: 0.6, mass: 60, origins: []string{"CN", "VN", "KR", "IN"}, oweights: []float64{6, 3, 1, 1}, modes: []string{"air", "sea"}, popular: 3, lowDuty: -1},
	{hs: "8471300000", desc: "portable computers", perKg: 180, sigma: 0.3, unit: "PCE", kgUnit: 2.6, netRatio: 0.75, mass: 250, origins: []string{"CN", "TW", "US"}, oweights: []float64{7, 2, 1}, modes: []string{"air", "sea"}, popular: 2, lowDuty: -1},
	{hs: "8528720000", desc: "television receivers", duty: 0.10, perKg: 22, sigma: 0.3, unit: "PCE", kgUnit: 14, netRatio: 0.7, mass: 900, origins: []string{"CN", "MX", "KR"}, oweights: []float64{5, 4, 1}, modes: []string{"sea", "road"}, popular: 2, lowDuty: 3},
	{hs: "8529909000", desc: "parts of television receivers", perKg: 9, sigma: 0.5, unit: "KGM", kgUnit: 1, netRatio: 0.85, mass: 300, origins: []string{"CN", "MX"}, oweights: []float64{6, 4}, modes: sea, popular: 1, lowDuty: -1},
	{hs: "6109100000", desc: "T-shirts of cotton, knitted", duty: 0.20, perKg: 16, sigma: 0.4, unit: "PCE", kgUnit: 0.22, netRatio: 0.9, mass: 400, origins: []string{"CN", "BD", "HN", "SV", "IN"}, oweights: []float64{4, 3, 2, 2, 1}, modes: []string{"sea", "road"}, popular: 4, lowDuty: 5},
	{hs: "6307909800", desc: "other made-up textile articles", duty: 0.10, perKg: 6, sigma: 0.45, unit: "KGM", kgUnit: 1, netRatio: 0.9, mass: 500, origins: []string{"CN", "IN"}, oweights: []float64{7, 3}, modes: sea, popular: 1.5, lowDuty: -1},
	{hs: "6403990000", desc: "footwear with leather uppers", duty: 0.25, perKg: 42, sigma: 0.35, unit: "PR", kgUnit: 1.1, netRatio: 0.8, mass: 350, origins: []string{"CN", "VN", "BR", "IT"}, oweights: []float64{5, 3, 2, 0.5}, modes: sea, popular: 2.5, lowDuty: 7},
	{hs: "6402990000", desc: "footwear of rubber or plastics", duty: 0.10, perKg: 11, sigma: 0.35, unit: "PR", kgUnit: 0.8, netRatio: 0.8, mass: 500, origins: []string{"CN", "VN", "ID"}, oweights: []float64{6, 3, 1}, modes: sea, popular: 2.5, lowDuty: -1},
	{hs: "2208300000", desc: "whisky", duty: 0.40, specific: 2.0, perKg: 11, sigma: 0.45, unit: "LTR", kgUnit: 1.45, netRatio: 0.65, mass: 1800, origins: []string{"GB", "US", "IE"}, oweights: []float64{6, 3, 1}, modes: sea, popular: 1, lowDuty: 10, excise: true},
	{hs: "2208400000", desc: "rum and tafia", duty: 0.40, specific: 2.0, perKg: 6, sigma: 0.4, unit: "LTR", kgUnit: 1.45, netRatio: 0.65, mass: 2500, origins: []string{"GT", "DO", "NI", "JM"}, oweights: []float64{3, 3, 2, 1}, modes: []string{"road", "sea"}, popular: 1, lowDuty: 10, excise: true},
	{hs: "2202100000", desc: "waters and soft drinks with added sugar", duty: 0.05, perKg: 0.9, sigma: 0.35, unit: "LTR", kgUnit: 1.1, netRatio: 0.9, mass: 9000, origins: []string{"MX", "SV", "US"}, oweights: []float64{5, 3, 2}, modes: road, popular: 1.5, lowDuty: -1},
	{hs: "2204210000", desc: "wine in containers of 2 l or less", duty: 0.15, specific: 0.5, perKg: 4.5, sigma: 0.5, unit: "LTR", kgUnit: 1.4, netRatio: 0.7, mass: 3000, origins: []string{"CL", "ES", "AR", "FR", "IT"}, oweights: []float64{4, 3, 3, 2, 2}, modes: sea, popular: 1.2, lowDuty: -1},
	{hs: "2402200000", desc: "cigarettes containing tobacco", duty: 0.60, specific: 15, perKg: 32, sigma: 0.35, unit: "MIL", kgUnit: 1.2, netRatio: 0.8, mass: 1200, origins: []string{"HN", "MX", "US", "PA"}, oweights: []float64{4, 3, 2, 1}, modes: []string{"road", "sea"}, popular: 0.5, lowDuty: 13, excise: true},
	{hs: "2401200000", desc: "tobacco, partly or wholly stemmed", duty: 0.10, perKg: 4, sigma: 0.4, unit: "KGM", kgUnit: 1, netRatio: 0.95, mass: 5000, origins: []string{"HN", "BR", "US"}, oweights: []float64{4, 4, 2}, modes: sea, popular: 0.3, lowDuty: -1},
	{hs: "8703230000", desc: "motor cars, 1500-3000 cc", duty: 0.20, perKg: 13, sigma: 0.45, unit: "PCE", kgUnit: 1450, netRatio: 0.98, mass: 1450, origins: []string{"JP", "US", "KR", "CN", "DE"}, oweights: []float64{4, 4, 2, 2, 1}, modes: sea, popular: 1, lowDuty: 15},
	{hs: "8708999000", desc: "other parts of motor vehicles", duty: 0.05, perKg: 9, sigma: 0.5, unit: "KGM", kgUnit: 1, netRatio: 0.85, mass: 400, origins: []string{"JP", "CN", "US", "MX"}, oweights: []float64{3, 4, 2, 2}, modes: []string{"sea", "road"}, popular: 2, lowDuty: -1},
	{hs: "4011100000", desc: "new pneumatic tyres for motor cars", duty: 0.15, perKg: 4.2, sigma: 0.3, unit: "PCE", kgUnit: 9, netRatio: 0.98, mass: 2500, origins: []string{"CN", "TH", "JP", "KR"}, oweights: []float64{5, 2, 2, 1}, modes: sea, popular: 1.5, lowDuty: -1},
	{hs: "7208510000", desc: "flat-rolled steel, hot-rolled, > 10 mm", duty: 0.05, perKg: 0.8, sigma: 0.25, unit: "KGM", kgUnit: 1, netRatio: 1, mass: 60000, origins: []string{"CN", "BR", "MX", "KR"}, oweights: []float64{5, 3, 3, 1}, modes: sea, popular: 0.6, lowDuty: -1, tradeDefence: 0.45},
	{hs: "7210490000", desc: "flat-rolled steel, galvanised", duty: 0.05, perKg: 1.1, sigma: 0.25, unit: "KGM", kgUnit: 1, netRatio: 1, mass: 40000, origins: []string{"CN", "MX", "KR", "JP"}, oweights: []float64{5, 3, 1, 1}, modes: sea, popular: 0.6, lowDuty: -1, tradeDefence: 0.40},
	{hs: "8541430000", desc: "photovoltaic modules", perKg: 5.5, sigma: 0.3, unit: "PCE", kgUnit: 24, netRatio: 0.85, mass: 12000, origins: []string{"CN", "IN", "US"}, oweights: []float64{8, 1, 1}, modes: sea, popular: 0.5, lowDuty: -1, tradeDefence: 0.50},
	{hs: "7604291000", desc: "aluminium profiles", duty: 0.10, perKg: 3.6, sigma: 0.3, unit: "KGM", kgUnit: 1, netRatio: 1, mass: 15000, origins: []string{"CN", "MX", "US"}, oweights: []float64{6, 3, 1}, modes: sea, popular: 0.6, lowDuty: -1, tradeDefence: 0.35},
	{hs: "8712000000", desc: "bicycles", duty: 0.10, perKg: 9, sigma: 0.4, unit: "PCE", kgUnit: 15, netRatio: 0.85, mass: 1500, origins: []string{"CN", "TW", "MX"}, oweights: []float64{6, 2, 2}, modes: sea, popular: 0.8, lowDuty: -1, tradeDefence: 0.35},
	{hs: "6907210000", desc: "ceramic tiles", duty: 0.10, perKg: 0.45, sigma: 0.35, unit: "MTK", kgUnit: 20, netRatio: 0.95, mass: 25000, origins: []string{"CN", "MX", "ES", "BR"}, oweights: []float64{5, 3, 1, 1}, modes: sea, popular: 0.8, lowDuty: -1, tradeDefence: 0.40},
	{hs: "3004900000", desc: "medicaments in measured doses", perKg: 55, sigma: 0.6, unit: "KGM", kgUnit: 1, netRatio: 0.7, mass: 300, origins: []string{"IN", "MX", "DE", "US", "CH"}, oweights: []float64{3, 3, 2, 2, 1}, modes: []string{"air", "sea"}, popular: 1.5, lowDuty: -1},
	{hs: "3304990000", desc: "beauty and make-up preparations", duty: 0.15, perKg: 22, sigma: 0.5, unit: "KGM", kgUnit: 1, netRatio: 0.7, mass: 200, origins: []string{"US", "FR", "KR", "CN", "MX"}, oweights: []float64{3, 2, 2, 2, 2}, modes: []string{"air", "sea"}, popular: 2, lowDuty: -1},
	{hs: "9503000000", desc: "toys", duty: 0.10, perKg: 7, sigma: 0.45, unit: "KGM", kgUnit: 1, netRatio: 0.8, mass: 800, origins: []string{"CN", "VN"}, oweights: []float64{9, 1}, modes: sea, popular: 2.5, lowDuty: -1},
	{hs: "8415101000", desc: "air conditioning machines, split system", duty: 0.10, perKg: 6.5, sigma: 0.3, unit: "PCE", kgUnit: 38, netRatio: 0.85, mass: 2500, origins: []string{"CN", "TH", "MX"}, oweights: []float64{6, 2, 2}, modes: sea, popular: 1.2, lowDuty: -1},
	{hs: "0901110000", desc: "coffee, not roasted", duty: 0.15, perKg: 3.2, sigma: 0.3, unit: "KGM", kgUnit: 1, netRatio: 0.99, mass: 18000, origins: []string{"HN", "BR", "CO"}, oweights: []float64{4, 3, 3}, modes: []string{"road", "sea"}, popular: 0.4, lowDuty: -1},
	{hs: "1006300000", desc: "rice, semi-milled or wholly milled", duty: 0.20, perKg: 0.6, sigma: 0.25, unit: "KGM", kgUnit: 1, netRatio: 0.99, mass: 25000, origins: []string{"US", "VN", "TH", "UY"}, oweights: []float64{5, 2, 2, 1}, modes: sea, popular: 0.8, lowDuty: -1},
	{hs: "0207140000", desc: "frozen cuts of chicken", duty: 0.30, perKg: 2.1, sigma: 0.3, unit: "KGM", kgUnit: 1, netRatio: 0.95, mass: 22000, origins: []string{"US", "BR", "MX"}, oweights: []float64{6, 2, 2}, modes: []string{"sea", "road"}, popular: 0.8, lowDuty: -1},
	{hs: "3926909000", desc: "other articles of plastics", duty: 0.10, perKg: 5, sigma: 0.55, unit: "KGM", kgUnit: 1, netRatio: 0.85, mass: 600, origins: []string{"CN", "MX", "US"}, oweights: []float64{6, 2, 2}, modes: []string{"sea", "road"}, popular: 3, lowDuty: -1},
	{hs: "8504403000", desc: "static converters (chargers, power supplies)", duty: 0.05, perKg: 18, sigma: 0.45, unit: "PCE", kgUnit: 0.25, netRatio: 0.7, mass: 150, origins: []string{"CN", "VN"}, oweights: []float64{8, 2}, modes: []string{"air", "sea"}, popular: 2, lowDuty: -1},
	{hs: "9102110000", desc: "wrist-watches, electrically operated", duty: 0.15, perKg: 380, sigma: 0.7, unit: "PCE", kgUnit: 0.12, netRatio: 0.5, mass: 12, origins: []string{"CN", "CH", "JP"}, oweights: []float64{6, 2, 2}, modes: air, popular: 0.8, lowDuty: -1},
	{hs: "6110200000", desc: "jerseys and pullovers of cotton", duty: 0.20, perKg: 20, sigma: 0.4, unit: "PCE", kgUnit: 0.45, netRatio: 0.9, mass: 350, origins: []string{"CN", "BD", "HN", "IN"}, oweights: []float64{4, 3, 2, 1}, modes: []string{"sea", "road"}, popular: 2, lowDuty: 5},
	{hs: "8544429000", desc: "electric conductors with connectors", duty: 0.05, perKg: 8, sigma: 0.45, unit: "KGM", kgUnit: 1, netRatio: 0.9, mass: 700, origins: []string{"CN", "MX", "US"}, oweights: []float64{6, 3, 1}, modes: sea, popular: 2, lowDuty: -1},
	{hs: "3401110000", desc: "toilet soap", duty: 0.10, perKg: 2.8, sigma: 0.4, unit: "KGM", kgUnit: 1, netRatio: 0.9, mass: 3000, origins: []string{"MX", "US", "SV"}, oweights: []float64{5, 3, 2}, modes: road, popular: 1, lowDuty: -1},
	{hs: "4202210000", desc: "handbags with outer surface of leather", duty: 0.20, perKg: 65, sigma: 0.7, unit: "PCE", kgUnit: 0.9, netRatio: 0.8, mass: 80, origins: []string{"CN", "IT", "FR", "VN"}, oweights: []float64{5, 2, 1, 2}, modes: []string{"air", "sea"}, popular: 1, lowDuty: 5},
	{hs: "8418210000", desc: "household refrigerators", duty: 0.15, perKg: 5, sigma: 0.3, unit: "PCE", kgUnit: 65, netRatio: 0.85, mass: 3000, origins: []string{"MX", "CN", "KR"}, oweights: []float64{5, 3, 2}, modes: []string{"road", "sea"}, popular: 1, lowDuty: -1},
	{hs: "8711200000", desc: "motorcycles, 50-250 cc", duty: 0.20, perKg: 7, sigma: 0.35, unit: "PCE", kgUnit: 125, netRatio: 0.9, mass: 3000, origins: []string{"CN", "IN", "JP"}, oweights: []float64{5, 4, 1}, modes: sea, popular: 1, lowDuty: 15},
}

// hubs are legitimate logistics hubs from which goods are often dispatched.
var hubs = []string{"PA", "US", "NL", "SG", "AE", "MX"}

// reroute are the origins declared by fraudsters evading trade-defence duties.
var reroute = []string{"VN", "MY", "TH", "ID"}

type office struct {
	code  string
	modes []string
}

var offices = []office{
	{"GTSTO01", []string{"sea"}}, {"GTPBA02", []string{"sea"}}, {"GTPQZ03", []string{"sea"}},
	{"GTGUA04", []string{"air", "post"}}, {"GTTEC05", []string{"road"}}, {"GTPDA06", []string{"road"}},
}
